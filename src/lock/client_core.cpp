#include "lock/client_core.hpp"

#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/except>
#include <pqxx/transaction>

#include <cmath>
#include <iostream>
#include <thread>

#include "pgelect/errors.hpp"

namespace pgelect::detail {
namespace {

using Clock = std::chrono::steady_clock;


std::string one_line(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (auto& c : s) {
        if (c == '\n') c = ' ';
    }
    return s;
}

// PostgreSQL array literal of text values ({"a","b\"c"}), passed as one parameter.
template <class Field>
std::string text_array(const std::vector<RenewItem>& items, Field field) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += '"';
        for (char c : items[i].*field) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
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

}  // namespace

template <class Tx, class Fn>
auto ClientCore::run(ConnectionPool& pool, const std::string& ctx, Fn&& fn) {
    int serialization_failures = 0;
    bool reconnected = false;
    for (;;) {
        auto conn = pool.borrow(ctx);
        try {
            Tx tx(*conn);
            return fn(tx);
        } catch (const pqxx::broken_connection& e) {
            const bool cut_off = conn.cut_off();
            conn.discard();
            if (cut_off) {
                // The server did not answer in time: another try would only wait again.
                throw UnavailableError(ctx + ": no answer from PostgreSQL within " +
                                       std::to_string(statement_limit(options_).count()) +
                                       " ms (the statement timeout plus " +
                                       std::to_string(kStatementGrace.count()) +
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
            if (!conn->is_open()) conn.discard();
            throw_sql_error(ctx, table_, e);
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            conn.discard();
            throw Error(ErrorKind::other, ctx + ": " + one_line(e.what()));
        }
    }
}

ClientCore::ClientCore(const std::string& dsn, LockClientOptions options)
    : options_((validate_options(options), std::move(options))),
      table_(parse_table_name(options_.table)),
      sql_(table_),
      owner_(options_.owner.empty() ? default_identity() : options_.owner),
      channel_(table_.channel()),
      conninfo_(make_conninfo(dsn, ConnDefaults{options_.connect_timeout, options_.statement_timeout,
                                                options_.timing.renew_deadline, "pgelect"})),
      pool_(conninfo_, options_.pool_size, [this](pqxx::connection& c) { sql_.prepare_on(c); },
            &watchdog_, statement_limit(options_)),
      renew_pool_(conninfo_, 1, [this](pqxx::connection& c) { sql_.prepare_on(c); }, &watchdog_,
                  statement_limit(options_)),
      listener_(
          conninfo_, channel_, [this](const std::string& payload) { on_notification(payload); },
          [this] { board_.wake_all(); }),
      renewer_([this](const std::vector<RenewItem>& items) { return renew(renew_pool_, items); },
               [this](const std::shared_ptr<LockState>& s, LossCause cause,
                      const std::string& reason) { lose(s, cause, reason); }) {}

ClientCore::~ClientCore() { shutdown(); }

std::string ClientCore::context(const char* operation, const std::string& name) const {
    return std::string(operation) + " lock \"" + name + "\" on table " + table_.display();
}

void ClientCore::shutdown() {
    if (shut_down_.exchange(true)) return;
    renewer_.stop();
    bool reachable = true;
    for (const auto& s : renewer_.held()) {
        if (reachable) {
            try {
                release(s, LossCause::client_closed);
            } catch (const UnavailableError&) {
                reachable = false;  // do not wait out a timeout for every lock
            } catch (const Error&) {
            }
        }
        lose(s, LossCause::client_closed, "the lock client was destroyed");
    }
    listener_.stop();
    hooks_ = Hooks{};
    pool_.clear_idle();
    renew_pool_.clear_idle();
}

void ClientCore::create_table() {
    run<pqxx::work>(pool_, "create lock table " + table_.display(), [&](pqxx::work& tx) {
        tx.exec(sql_.create);
        tx.commit();
    });
}

void ClientCore::try_create_table() {
    run<pqxx::work>(pool_, "create lock table " + table_.display() + " if missing",
                    [&](pqxx::work& tx) {
                        // The advisory lock serialises concurrent creators (CREATE ...
                        // IF NOT EXISTS alone can still collide on the catalog).
                        tx.exec("SELECT pg_advisory_xact_lock(7243019561);\n" + sql_.try_create);
                        tx.commit();
                    });
}

void ClientCore::drop_table() {
    run<pqxx::work>(pool_, "drop lock table " + table_.display(), [&](pqxx::work& tx) {
        tx.exec(sql_.drop);
        tx.commit();
    });
}

std::optional<ClientCore::Taken> ClientCore::try_take(const std::string& name,
                                                      const std::string& owner,
                                                      const AcquireOptions& o,
                                                      std::optional<std::int64_t> stale_rvn) {
    const std::string ctx = context("acquire", name);
    return run<pqxx::nontransaction>(pool_, ctx, [&](pqxx::nontransaction& tx) -> std::optional<Taken> {
        // libpqxx 6 binds NULL from nullptr only, hence the four spellings.
        pqxx::result r;
        if (o.data) {
            const pqxx::binarystring data(o.data->data(), o.data->size());
            r = stale_rvn ? tx.exec_prepared(Statements::kAcquire, name, data, owner,
                                             o.replace_data, *stale_rvn, channel_)
                          : tx.exec_prepared(Statements::kAcquire, name, data, owner,
                                             o.replace_data, nullptr, channel_);
        } else {
            r = stale_rvn ? tx.exec_prepared(Statements::kAcquire, name, nullptr, owner,
                                             o.replace_data, *stale_rvn, channel_)
                          : tx.exec_prepared(Statements::kAcquire, name, nullptr, owner,
                                             o.replace_data, nullptr, channel_);
        }
        if (r.empty()) return std::nullopt;
        Taken t{r[0][0].as<std::int64_t>(), r[0][2].as<std::int64_t>(),
                bytes(r[0][1]).value_or(std::string())};
        return t;
    });
}

std::optional<ClientCore::Row> ClientCore::poll(const std::string& name) {
    return run<pqxx::nontransaction>(pool_, context("read", name), [&](pqxx::nontransaction& tx) -> std::optional<Row> {
        auto r = tx.exec_prepared(Statements::kPoll, name);
        if (r.empty()) return std::nullopt;
        Row row;
        if (!r[0][0].is_null()) row.rvn = r[0][0].as<std::int64_t>();
        if (!r[0][1].is_null()) row.owner = r[0][1].as<std::string>();
        if (!r[0][2].is_null()) row.fencing_token = r[0][2].as<std::int64_t>();
        return row;
    });
}

Lock ClientCore::acquire(const std::string& name, const AcquireOptions& o, std::stop_token stop) {
    validate_lock_name(name);
    const LeaseTiming timing = o.timing.value_or(options_.timing);
    if (o.timing) validate_timing(*o.timing);
    if (o.owner) validate_owner(*o.owner);
    const std::string& owner = o.owner ? *o.owner : owner_;
    if (shut_down_) throw NotAcquiredError(context("acquire", name) + ": the client is shut down");
    const auto lease = timing.lease_duration;

    WaitBoard::Registration registration(board_, name);
    std::optional<std::int64_t> expected = tracker_.stale_version(name, Clock::now(), lease);
    bool may_take = true;
    for (;;) {
        if (stop.stop_requested()) {
            throw NotAcquiredError(context("acquire", name) + ": cancelled while waiting");
        }
        const auto generation = board_.generation(name);
        if (may_take) {
            const auto start = Clock::now();
            std::optional<Taken> taken;
            try {
                taken = try_take(name, owner, o, expected);
            } catch (const Error&) {
                if (hooks_.attempt) hooks_.attempt(name, AttemptResult::error);
                throw;
            }
            if (hooks_.attempt) hooks_.attempt(name, taken ? AttemptResult::acquired : AttemptResult::busy);
            if (taken) {
                tracker_.forget(name);
                auto state = std::make_shared<LockState>(name, owner, timing, o.keep_on_release);
                state->fencing_token = taken->fencing_token;
                state->record_version_number = taken->rvn;
                state->data = std::move(taken->data);
                state->valid_until = start + timing.renew_deadline;
                state->next_renewal = start + timing.heartbeat_interval;
                if (Clock::now() >= state->valid_until) {
                    // The database took longer than the renew deadline to
                    // answer: this lease cannot be trusted; give it back.
                    try {
                        release(state);
                    } catch (const Error&) {
                    }
                    continue;
                }
                renewer_.add(state);
                return Lock(shared_from_this(), std::move(state));
            }
        }
        auto row = poll(name);
        if (o.observer) {
            LockObservation seen{name, row.has_value(), row && row->rvn, row ? row->owner : "",
                                 row ? row->fencing_token : std::nullopt};
            o.observer(seen);
        }
        if (!row || !row->rvn) {
            // Free (or gone) now: try again at once.
            expected.reset();
            may_take = true;
            continue;
        }
        const auto now = Clock::now();
        const auto first_seen = tracker_.observe(name, *row->rvn, now);
        if (o.fail_if_locked) {
            throw NotAcquiredError(context("acquire", name) + ": held by \"" + row->owner + "\"");
        }
        if (now - first_seen >= lease) {
            expected = row->rvn;  // unchanged for a full lease: the holder is gone
            may_take = true;
            continue;
        }
        may_take = false;
        listener_.ensure_started(options_.connect_timeout);
        board_.wait(name, generation, std::min(now + timing.retry_interval, first_seen + lease), stop);
        // Woken by a release: try to take it at once; otherwise poll first.
        may_take = board_.generation(name).released != generation.released;
    }
}

std::vector<Renewed> ClientCore::renew(ConnectionPool& pool, const std::vector<RenewItem>& items) {
    RenewalReport report;
    const bool wanted = hooks_.renewal && (!hooks_.renewal_wanted || hooks_.renewal_wanted());
    if (wanted) {
        for (const auto& i : items) report.names.push_back(i.name);
    }
    const auto start = Clock::now();
    auto finish = [&](bool ok, std::optional<ErrorKind> error, const std::vector<Renewed>* rows) {
        if (!wanted) return;
        report.elapsed = Clock::now() - start;
        report.ok = ok;
        report.error = error;
        if (rows) {
            for (const auto& r : *rows) report.still_held.push_back(r.name);
        }
        hooks_.renewal(report);
    };
    try {
        auto rows = renew_statement(pool, items);
        finish(true, std::nullopt, &rows);
        return rows;
    } catch (const Error& e) {
        finish(false, e.kind(), nullptr);
        throw;
    }
}

std::vector<Renewed> ClientCore::renew_statement(ConnectionPool& pool,
                                                 const std::vector<RenewItem>& items) {
    const std::string ctx = items.size() == 1 ? context("renew", items[0].name)
                                              : "renew " + std::to_string(items.size()) +
                                                    " locks on table " + table_.display();
    return run<pqxx::nontransaction>(pool, ctx, [&](pqxx::nontransaction& tx) {
        auto r = tx.exec_prepared(Statements::kRenew, text_array(items, &RenewItem::name), bigint_array(items),
                                text_array(items, &RenewItem::owner));
        std::vector<Renewed> out;
        out.reserve(r.size());
        for (const auto& row : r) out.push_back({row[0].as<std::string>(), row[1].as<std::int64_t>()});
        return out;
    });
}

void ClientCore::on_notification(const std::string& payload) {
    if (payload.size() < 2) return;
    const std::string name = payload.substr(1);
    if (payload[0] == 'R') {
        board_.wake(name);
    } else {
        board_.touch(name);
    }
}

void ClientCore::lose(const std::shared_ptr<LockState>& s, LossCause cause,
                      const std::string& reason) {
    if (!s->mark_released(cause, reason)) return;
    renewer_.remove(s.get());
    board_.wake(s->name);
    s->lost.request_stop();
}

void ClientCore::heartbeat(const std::shared_ptr<LockState>& s) {
    std::int64_t token;
    {
        std::lock_guard lk(s->mu);
        if (s->released) {
            throw AlreadyReleasedError(context("renew", s->name) + ": already released (" +
                                       s->release_reason + ")");
        }
        token = s->fencing_token;
    }
    const auto start = Clock::now();
    auto result = renew(pool_, {RenewItem{s->name, token, s->owner}});
    if (result.empty()) {
        lose(s, LossCause::taken_over,
             "taken over: the row no longer carries this holder's fencing token");
        throw AlreadyReleasedError(context("renew", s->name) + ": the lock was taken over or released");
    }
    s->renewed(start, result[0].record_version_number);
    if (!s->valid(Clock::now())) {
        throw AlreadyReleasedError(context("renew", s->name) + ": already released (" +
                                   s->release_reason + ")");
    }
}

void ClientCore::release(const std::shared_ptr<LockState>& s, LossCause cause) {
    std::int64_t token;
    {
        std::lock_guard lk(s->mu);
        if (s->released) {
            throw AlreadyReleasedError(context("release", s->name) + ": already released (" +
                                       s->release_reason + ")");
        }
        token = s->fencing_token;
    }
    // From here on we no longer trust the lease, whatever the outcome.
    renewer_.remove(s.get());
    bool released = false;
    try {
        released = run<pqxx::nontransaction>(pool_, context("release", s->name), [&](pqxx::nontransaction& tx) {
            const char* sql = s->keep_on_release ? Statements::kReleaseKeep : Statements::kReleaseDelete;
            return !tx.exec_prepared(sql, s->name, token, s->owner, channel_).empty();
        });
    } catch (const Error& e) {
        lose(s, e.kind() == ErrorKind::unavailable ? LossCause::database_unavailable
                                                   : LossCause::renewal_failed,
             std::string("release failed: ") + e.what());
        throw;
    }
    if (!released) {
        lose(s, LossCause::taken_over, "taken over or released by someone else");
        throw AlreadyReleasedError(context("release", s->name) +
                                   ": already released (taken over or released by someone else)");
    }
    lose(s, cause, cause == LossCause::released ? "released" : "the lock client was destroyed");
}

void ClientCore::abandon(const std::shared_ptr<LockState>& s) {
    lose(s, LossCause::released, "abandoned: left to expire after the lease");
}

void ClientCore::set_data(const std::shared_ptr<LockState>& s, const std::string& data) {
    std::int64_t token;
    {
        std::lock_guard lk(s->mu);
        if (s->released) {
            throw AlreadyReleasedError(context("set data of", s->name) + ": already released (" +
                                       s->release_reason + ")");
        }
        token = s->fencing_token;
    }
    bool ok = run<pqxx::nontransaction>(pool_, context("set data of", s->name), [&](pqxx::nontransaction& tx) {
        const pqxx::binarystring bin(data.data(), data.size());
        return !tx.exec_prepared(Statements::kSetData, s->name, token, s->owner, bin).empty();
    });
    if (!ok) {
        lose(s, LossCause::taken_over, "taken over or released by someone else");
        throw AlreadyReleasedError(context("set data of", s->name) +
                                   ": the lock was taken over or released");
    }
    std::lock_guard lk(s->mu);
    s->data = data;
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

LockInfo ClientCore::get(const std::string& name) {
    validate_lock_name(name);
    return run<pqxx::nontransaction>(pool_, context("read", name), [&](pqxx::nontransaction& tx) {
        auto r = tx.exec_prepared(Statements::kGetOne, name);
        if (r.empty()) throw NotFoundError(context("read", name) + ": no such lock");
        return to_info(r[0]);
    });
}

std::vector<LockInfo> ClientCore::get_all() {
    return run<pqxx::nontransaction>(pool_, "list locks on table " + table_.display(), [&](pqxx::nontransaction& tx) {
        std::vector<LockInfo> out;
        for (const auto& row : tx.exec_prepared(Statements::kGetAll)) out.push_back(to_info(row));
        return out;
    });
}

}  // namespace pgelect::detail
