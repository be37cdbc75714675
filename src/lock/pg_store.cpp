#include "lock/pg_store.hpp"

#include "lock/timing_rules.hpp"

#include <pqxx/binarystring>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include <cmath>
#include <map>
#include <thread>
#include <type_traits>

#include "pgelect/errors.hpp"
#include "pgelect/log.hpp"

namespace pgelect::detail {
namespace {

std::string one_line(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (auto& c : s) {
        if (c == '\n') c = ' ';
    }
    return s;
}

// PostgreSQL array literal of text values ({"a","b\"c"}), passed as one parameter.
std::string text_array(const std::vector<std::string>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        out += '"';
        for (char c : values[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

template <class Field>
std::string text_array(const std::vector<RenewItem>& items, Field field) {
    std::vector<std::string> values;
    values.reserve(items.size());
    for (const auto& i : items) values.push_back(i.*field);
    return text_array(values);
}

std::string bigint_array(const std::vector<RenewItem>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(items[i].fencing_token);
    }
    return out + "}";
}

std::optional<std::chrono::system_clock::time_point> epoch(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    auto us = std::llround(f.as<double>() * 1e6);
    return std::chrono::system_clock::time_point(std::chrono::microseconds(us));
}

std::optional<std::string> bytes(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return pqxx::binarystring(f).str();
}

[[noreturn]] void throw_sql_error(const std::string& ctx, const TableName& table,
                                  const pqxx::sql_error& e) {
    const std::string& state = e.sqlstate();
    const std::string msg = ctx + ": " + one_line(e.what());
    if (state == "42P01") {
        throw FailedPreconditionError(ctx + ": the lock table " + table.display() +
                                      " does not exist; create it with LockClient::try_create_table()"
                                      " or by applying schema.sql");
    }
    if (state == "42P07") {
        throw FailedPreconditionError(ctx + ": the lock table " + table.display() + " already exists");
    }
    if (state == "57014") throw UnavailableError(ctx + ": statement timed out (" + one_line(e.what()) + ")");
    if (state == "40001" || state == "40P01") throw SerializationError(msg);
    if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0 || state == "53300" ||
        state == "53000") {
        throw UnavailableError(msg);
    }
    // libpqxx 6 throws insufficient_privilege without its SQLSTATE.
    if (state == "42501" || dynamic_cast<const pqxx::insufficient_privilege*>(&e) != nullptr) {
        throw FailedPreconditionError(msg);
    }
    throw Error(ErrorKind::other, msg);
}

// How long after the statement timeout a silent connection is cut off (the
// server answers a timed-out statement with an error well within this).
constexpr std::chrono::milliseconds kStatementGrace{1000};

std::chrono::milliseconds statement_limit(const LockClientOptions& o) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(o.statement_timeout) +
           kStatementGrace;
}

// The renewal connection has a shorter timeout (see renewal_timeout()), so a
// renewal whose reply is lost is retried before the renew deadline.
std::chrono::milliseconds renewal_limit(const LockClientOptions& o) {
    const Duration timeout = renewal_timeout(o);
    return timeout + statement_grace(timeout);
}

}  // namespace

template <class Tx, class Fn>
auto PgStore::run(ConnectionPool& pool, const std::string& ctx, Fn&& fn, std::string* warning) {
    int serialization_failures = 0;
    bool reconnected = false;
    for (;;) {
        auto conn = pool.borrow(ctx);
        try {
            Tx tx(*conn);
            if constexpr (std::is_void_v<std::invoke_result_t<Fn&, Tx&>>) {
                fn(tx);
                if (warning) *warning = conn.warning();
                return;
            } else {
                auto out = fn(tx);
                if (warning) *warning = conn.warning();
                return out;
            }
        } catch (const pqxx::broken_connection& e) {
            const bool cut_off = conn.cut_off();
            conn.discard();
            if (cut_off) {
                // The server did not answer in time: another try would only wait again.
                const bool renewal = &pool == &renew_pool_;
                const auto limit = renewal ? renewal_limit(options_) : statement_limit(options_);
                const auto timeout = renewal ? renewal_timeout(options_) : options_.statement_timeout;
                throw UnavailableError(ctx + ": no answer from PostgreSQL within " +
                                       std::to_string(limit.count()) + " ms (the " +
                                       (renewal ? "renewal " : "") + "statement timeout plus " +
                                       std::to_string((limit - timeout).count()) +
                                       " ms); the connection was closed");
            }
            // A pooled connection may have died while idle (server restart):
            // one fresh connection gets one more try.
            if (!reconnected) {
                reconnected = true;
                continue;
            }
            throw UnavailableError(ctx + ": connection to PostgreSQL lost: " + one_line(e.what()));
        } catch (const pqxx::in_doubt_error& e) {
            conn.discard();
            throw UnavailableError(ctx + ": outcome unknown: " + one_line(e.what()));
        } catch (const pqxx::statement_completion_unknown& e) {
            conn.discard();
            throw UnavailableError(ctx + ": outcome unknown: " + one_line(e.what()));
        } catch (const pqxx::transaction_rollback& e) {
            // Serialization failure or deadlock (libpqxx 6 does not derive these
            // from sql_error): the statement did nothing, so it is retried.
            if (serialization_failures++ < options_.serialization_retries) {
                std::this_thread::sleep_for(
                    std::chrono::milliseconds(1 << std::min(serialization_failures, 6)));
                continue;
            }
            throw SerializationError(ctx + ": gave up after " +
                                     std::to_string(options_.serialization_retries) +
                                     " retries: " + one_line(e.what()));
        } catch (const pqxx::sql_error& e) {
            // On a standby (a read-only transaction, or WAL functions refused
            // during recovery): after a promotion this connection still goes to
            // the old primary, now a standby.  A fresh connection lets a
            // multi-host DSN with target_session_attrs=read-write find the new
            // primary; the statement did nothing, so it is tried once more.
            const std::string& state = e.sqlstate();
            const bool standby =
                state == "25006" ||
                (state == "55000" && std::string(e.what()).find("recovery is in progress") !=
                                         std::string::npos);
            if (standby) {
                conn.discard();
                if (!reconnected) {
                    reconnected = true;
                    continue;
                }
                throw UnavailableError(ctx + ": the server is a standby (read-only): " +
                                       one_line(e.what()));
            }
            if (!conn->is_open()) conn.discard();
            if (!unnamed_ && (state == "26000" || state == "42P05")) {
                // A prepared statement missing, or there already: the
                // statements of one connection reach different server
                // connections (a pooler in transaction mode).
                conn.discard();
                throw FailedPreconditionError(
                    ctx + ": " + one_line(e.what()) +
                    "; the connection goes through a pooler in transaction mode (PgBouncer "
                    "pool_mode = transaction), which does not keep prepared statements: set "
                    "pooling to transaction (LockClientOptions::pooling, database.pooling), "
                    "see docs/ha.md");
            }
            throw_sql_error(ctx, table_, e);
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            conn.discard();
            throw Error(ErrorKind::other, ctx + ": " + one_line(e.what()));
        }
    }
}

namespace {
LockInfo to_info(const pqxx::row& row) {
    LockInfo info;
    info.name = row[0].as<std::string>();
    if (!row[1].is_null()) info.owner = row[1].as<std::string>();
    info.data = bytes(row[2]);
    if (!row[3].is_null()) info.record_version_number = row[3].as<std::int64_t>();
    if (!row[4].is_null()) info.fencing_token = row[4].as<std::int64_t>();
    info.acquired_at = epoch(row[5]);
    info.renewed_at = epoch(row[6]);
    return info;
}
}  // namespace

namespace {
// With transaction pooling a session setting would stay with one server
// connection, not with the client: none is set.
ConnInfo pooled_conninfo(const std::string& dsn, const LockClientOptions& o, Duration timeout) {
    ConnInfo info = make_conninfo(
        dsn, ConnDefaults{o.connect_timeout, timeout, o.timing.renew_deadline, "pgelect"});
    if (o.pooling == Pooling::transaction) info.statement_timeout = Duration::zero();
    return info;
}
}  // namespace

PgStore::PgStore(const std::string& dsn, const LockClientOptions& options)
    : options_((validate_options(options), options)),
      table_(parse_table_name(options_.table)),
      sql_(table_),
      unnamed_(options_.pooling == Pooling::transaction),
      conninfo_(pooled_conninfo(dsn, options_, options_.statement_timeout)),
      renew_conninfo_(pooled_conninfo(dsn, options_, renewal_timeout(options_))),
      listen_conninfo_(make_conninfo(options_.listen_dsn.empty() ? dsn : options_.listen_dsn,
                                     ConnDefaults{options_.connect_timeout, options_.statement_timeout,
                                                  options_.timing.renew_deadline, "pgelect"})),
      listening_(!(unnamed_ && options_.listen_dsn.empty())),
      pool_(conninfo_, options_.pool_size,
            [this](pqxx::connection& c) {
                if (!unnamed_) sql_.prepare_on(c);
                if (!replication_checked_.exchange(true)) check_replication(c);
            },
            &watchdog_, statement_limit(options_)),
      renew_pool_(renew_conninfo_, 1,
                  [this](pqxx::connection& c) {
                      if (!unnamed_) sql_.prepare_on(c);
                  },
                  &watchdog_, renewal_limit(options_)),
      listener_(
          listen_conninfo_,
          [this](pqxx::connection_base& conn) {
              pqxx::nontransaction tx(conn);
              return channel(tx);
          },
          [this](const std::string& payload) {
              if (listeners_.notification) listeners_.notification(payload);
          },
          [this] {
              if (listeners_.reconnected) listeners_.reconnected();
          }) {}

PgStore::~PgStore() { listener_.stop(); }

std::string PgStore::unknown_outcome(const char* operation, const std::vector<std::string>& names,
                                     const std::string& ctx, const std::string& warning,
                                     const char* consequence) {
    if (listeners_.unknown_outcome) listeners_.unknown_outcome(operation, names, warning);
    return ctx + ": outcome unknown: PostgreSQL answered with a warning (" + warning +
           "), so the write may not survive a failover; " + consequence;
}

ReplicationInfo PgStore::read_replication(pqxx::transaction_base& tx) const {
    // exec_params: libpqxx 6.4 leaks the result of a plain exec() whose
    // connection breaks, and only this path can be told apart (lsan.supp).
    const auto r = tx.exec_params(sql_.replication);
    ReplicationInfo info;
    info.server = conninfo_.description;
    for (const auto& row : r) {
        info.standby = row[0].as<bool>();
        if (!row[1].is_null()) info.timeline = row[1].as<std::int64_t>();
        info.synchronous_commit = row[2].as<std::string>();
        info.synchronous_standby_names = row[3].as<std::string>();
        if (!row[4].as<bool>()) continue;
        StandbyInfo s;
        // Without pg_read_all_stats a role sees that a standby exists, not what it is.
        if (!row[5].is_null()) s.name = row[5].as<std::string>();
        if (!row[6].is_null()) s.state = row[6].as<std::string>();
        if (!row[7].is_null()) s.sync_state = row[7].as<std::string>();
        info.standbys.push_back(std::move(s));
    }
    return info;
}

ReplicationInfo PgStore::replication_info() {
    return run<pqxx::nontransaction>(pool_, "read the replication of " + conninfo_.description,
                                     [&](pqxx::nontransaction& tx) { return read_replication(tx); });
}

void PgStore::check_replication(pqxx::connection& conn) {
    try {
        pqxx::nontransaction tx(conn);
        const ReplicationInfo info = read_replication(tx);
        const std::string risk = info.risk();
        if (!risk.empty()) {
            log(LogLevel::warning, "PostgreSQL (" + info.server + "): " + risk +
                                       "; leases stay safe (failover quarantine, epoch tokens), "
                                       "see docs/ha.md");
        }
        if (unnamed_) {
            // Transaction pooling: the role's own setting is the only one.
            const auto r = tx.exec_params("SELECT current_setting('statement_timeout'), current_user");
            if (r[0][0].as<std::string>() == "0") {
                log(LogLevel::warning,
                    "PostgreSQL (" + info.server + "): no statement_timeout for role " +
                        r[0][1].as<std::string>() +
                        ", and with transaction pooling pgelect sets none; a statement the server "
                        "does not finish is cut off by pgelect after " +
                        std::to_string(statement_limit(options_).count()) +
                        " ms, but keeps running on the server: ALTER ROLE " +
                        r[0][1].as<std::string>() + " SET statement_timeout = '" +
                        std::to_string(options_.statement_timeout.count()) + "ms'");
            }
        }
    } catch (const std::exception&) {
        // A check for people, not for the protocol: the statement that
        // follows reports a broken connection.
    }
}

std::string PgStore::channel(pqxx::transaction_base& tx) {
    {
        std::lock_guard lk(channel_mu_);
        if (!channel_.empty()) return channel_;
    }
    const auto r = tx.exec_params(sql_.resolve_table, table_.quoted());
    if (r.empty()) return table_.channel();  // no such table (yet)
    TableName canonical;
    canonical.schema = r[0][0].as<std::string>();
    canonical.table = r[0][1].as<std::string>();
    std::lock_guard lk(channel_mu_);
    channel_ = canonical.channel();
    return channel_;
}

void PgStore::set_listeners(Listeners listeners) { listeners_ = std::move(listeners); }

void PgStore::ensure_listening(std::chrono::milliseconds wait) {
    // Transaction pooling without a listen_dsn: waiters poll.
    if (listening_) listener_.ensure_started(wait);
}

void PgStore::stop_listening() { listener_.stop(); }

void PgStore::warm_renewal() {
    // Borrowed and given back: connects (and sets the session up) only if
    // no renewal connection is open.
    auto conn = renew_pool_.borrow("open the renewal connection of table " + table_.display());
}

void PgStore::close_idle() {
    pool_.clear_idle();
    renew_pool_.clear_idle();
}

void PgStore::create_table() {
    run<pqxx::work>(pool_, "create lock table " + table_.display(), [&](pqxx::work& tx) {
        tx.exec(sql_.create);
        tx.commit();
    });
}

void PgStore::try_create_table() {
    run<pqxx::work>(pool_, "create lock table " + table_.display() + " if missing",
                    [&](pqxx::work& tx) {
                        // The advisory lock serialises concurrent creators (CREATE ...
                        // IF NOT EXISTS alone can still collide on the catalog).
                        tx.exec("SELECT pg_advisory_xact_lock(7243019561);\n" + sql_.try_create);
                        tx.commit();
                    });
}

void PgStore::drop_table() {
    run<pqxx::work>(pool_, "drop lock table " + table_.display(), [&](pqxx::work& tx) {
        tx.exec(sql_.drop);
        tx.commit();
    });
}

std::int64_t PgStore::bump_epoch(std::int64_t above) {
    if (above < 0) throw InvalidArgumentError("bump-epoch: the token to exceed must not be negative");
    const std::string ctx = "bump the epoch of lock table " + table_.display();
    std::string warning;
    const auto top = run<pqxx::work>(pool_, ctx, [&](pqxx::work& tx) {
        // One bump at a time, and no acquisition of this table draws a token
        // meanwhile from a sequence about to move.
        tx.exec("LOCK TABLE " + table_.quoted() + " IN EXCLUSIVE MODE");
        const auto r = tx.exec_params1(sql_.bump_epoch, above);
        tx.commit();
        return r[2].as<std::int64_t>();
    }, &warning);
    if (warning.empty()) return top;
    throw UnavailableError(ctx + ": outcome unknown: PostgreSQL answered with a warning (" + warning +
                           "), so the bump may not survive a failover; run it again");
}

TakeOutcome PgStore::try_take(const std::string& name, const std::string& owner,
                              const AcquireOptions& o, std::optional<std::int64_t> stale_rvn) {
    const std::string ctx = context("acquire", name);
    const long long lease_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            o.timing.value_or(options_.timing).lease_duration)
            .count();
    std::string warning;
    TakeOutcome outcome = run<pqxx::nontransaction>(pool_, ctx, [&](pqxx::nontransaction& tx) -> TakeOutcome {
        const std::string channel_ = channel(tx);
        // libpqxx 6 binds NULL from nullptr only, hence the four spellings.
        pqxx::result r;
        if (o.data) {
            const pqxx::binarystring data(o.data->data(), o.data->size());
            r = stale_rvn ? exec(tx, Statements::kAcquire, sql_.acquire, name, data, owner,
                                             o.replace_data, *stale_rvn, channel_, lease_ms)
                          : exec(tx, Statements::kAcquire, sql_.acquire, name, data, owner,
                                             o.replace_data, nullptr, channel_, lease_ms);
        } else {
            r = stale_rvn ? exec(tx, Statements::kAcquire, sql_.acquire, name, nullptr, owner,
                                             o.replace_data, *stale_rvn, channel_, lease_ms)
                          : exec(tx, Statements::kAcquire, sql_.acquire, name, nullptr, owner,
                                             o.replace_data, nullptr, channel_, lease_ms);
        }
        TakeOutcome out;
        if (r.empty()) return out;
        const auto quarantine = r[0][3].as<std::int64_t>();
        if (quarantine < 0) {
            throw FailedPreconditionError(
                ctx + ": the server's timeline (" + r[0][4].as<std::string>() +
                ") is below the highest the table " + table_.display() +
                " has been used on: it was moved to another cluster (pg_upgrade, dump and "
                "restore, logical migration), so its fencing tokens could go backwards; run "
                "`pgelect schema bump-epoch` once, then try again");
        }
        out.quarantine = std::chrono::milliseconds(quarantine);
        if (listeners_.timeline) listeners_.timeline(r[0][4].as<std::int64_t>());
        if (r[0][0].is_null()) return out;
        out.taken = Taken{r[0][0].as<std::int64_t>(), r[0][2].as<std::int64_t>(),
                          bytes(r[0][1]).value_or(std::string())};
        return out;
    }, &warning);
    if (warning.empty()) return outcome;
    // Committed here, perhaps never on a standby: not taken.  What may have
    // been written is given back (best effort; it expires after a lease anyway).
    if (outcome.taken) {
        try {
            release(name, outcome.taken->fencing_token, owner, o.keep_on_release);
        } catch (const Error&) {
        }
    }
    throw UnavailableError(unknown_outcome("acquire", {name}, ctx, warning,
                                           outcome.taken ? "not taken, and released again"
                                                         : "nothing was taken"));
}

std::unordered_map<std::string, PolledRow> PgStore::poll(const std::vector<std::string>& names) {
    const std::string ctx = names.size() == 1 ? context("read", names[0])
                                              : "read " + std::to_string(names.size()) +
                                                    " locks on table " + table_.display();
    return run<pqxx::nontransaction>(pool_, ctx, [&](pqxx::nontransaction& tx) {
        auto r = exec(tx, Statements::kPoll, sql_.poll, text_array(names));
        std::unordered_map<std::string, PolledRow> rows;
        for (const auto& f : r) {
            PolledRow row;
            if (!f[1].is_null()) row.rvn = f[1].as<std::int64_t>();
            if (!f[2].is_null()) row.owner = f[2].as<std::string>();
            if (!f[3].is_null()) row.fencing_token = f[3].as<std::int64_t>();
            rows.emplace(f[0].as<std::string>(), std::move(row));
        }
        return rows;
    });
}

std::vector<Renewed> PgStore::renew(const std::vector<RenewItem>& items, RenewVia via) {
    ConnectionPool& pool = via == RenewVia::renewal_connection ? renew_pool_ : pool_;
    const std::string ctx = items.size() == 1 ? context("renew", items[0].name)
                                              : "renew " + std::to_string(items.size()) +
                                                    " locks on table " + table_.display();
    std::string warning;
    auto renewed = run<pqxx::nontransaction>(pool, ctx, [&](pqxx::nontransaction& tx) {
        auto r = exec(tx, Statements::kRenew, sql_.renew, text_array(items, &RenewItem::name), bigint_array(items),
                                text_array(items, &RenewItem::owner));
        // Each held lock once: its new version if a row carries one (see Statements::renew).
        std::vector<Renewed> out;
        out.reserve(r.size() / 2 + 1);
        std::map<std::pair<std::string, std::int64_t>, std::size_t> index;
        for (const auto& row : r) {
            if (row[0].is_null()) {
                if (listeners_.timeline) listeners_.timeline(row[2].as<std::int64_t>());
                continue;
            }
            auto key = std::make_pair(row[0].as<std::string>(), row[1].as<std::int64_t>());
            auto [it, added] = index.emplace(key, out.size());
            if (added) out.push_back(Renewed{key.first, key.second, std::nullopt});
            if (!row[2].is_null()) out[it->second].record_version_number = row[2].as<std::int64_t>();
        }
        return out;
    }, &warning);
    if (warning.empty()) return renewed;
    std::vector<std::string> names;
    for (const auto& i : items) names.push_back(i.name);
    throw UnavailableError(unknown_outcome("renew", names, ctx, warning, "not counted as a renewal"));
}

bool PgStore::release(const std::string& name, std::int64_t token, const std::string& owner,
                      bool keep) {
    const std::string ctx = context("release", name);
    std::string warning;
    const bool released = run<pqxx::nontransaction>(pool_, ctx, [&](pqxx::nontransaction& tx) {
        const char* sql = keep ? Statements::kReleaseKeep : Statements::kReleaseDelete;
        return !exec(tx, sql, keep ? sql_.release_keep : sql_.release_delete, name, token, owner, channel(tx)).empty();
    }, &warning);
    // The holder stopped believing before the release was sent: an unknown
    // outcome here only means followers may wait out the lease.
    if (!warning.empty()) unknown_outcome("release", {name}, ctx, warning, "");
    return released;
}

bool PgStore::set_data(const std::string& name, std::int64_t token, const std::string& owner,
                       const std::string& data) {
    const std::string ctx = context("set data of", name);
    std::string warning;
    const bool set = run<pqxx::nontransaction>(pool_, ctx, [&](pqxx::nontransaction& tx) {
        const pqxx::binarystring bin(data.data(), data.size());
        return !exec(tx, Statements::kSetData, sql_.set_data, name, token, owner, bin).empty();
    }, &warning);
    if (warning.empty()) return set;
    throw UnavailableError(unknown_outcome("set_data", {name}, ctx, warning,
                                           "the data may or may not have been replaced"));
}

LockInfo PgStore::get(const std::string& name) {
    return run<pqxx::nontransaction>(pool_, context("read", name), [&](pqxx::nontransaction& tx) {
        auto r = exec(tx, Statements::kGetOne, sql_.get_one, name);
        if (r.empty()) throw NotFoundError(context("read", name) + ": no such lock");
        return to_info(r[0]);
    });
}

std::vector<LockInfo> PgStore::get_all() {
    return run<pqxx::nontransaction>(pool_, "list locks on table " + table_.display(), [&](pqxx::nontransaction& tx) {
        std::vector<LockInfo> out;
        for (const auto& row : exec(tx, Statements::kGetAll, sql_.get_all)) out.push_back(to_info(row));
        return out;
    });
}

}  // namespace pgelect::detail
