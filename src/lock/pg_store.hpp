// The LockStore on PostgreSQL (libpqxx): the prepared statements, a connection
// pool for acquire/release/reads, the renewal thread's own connection, the
// statement watchdog and the LISTEN connection.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <utility>

#include <pqxx/result>
#include <pqxx/transaction_base>

#include "lock/names.hpp"
#include "lock/statements.hpp"
#include "lock/store.hpp"
#include "pg/conninfo.hpp"
#include "pg/listener.hpp"
#include "pg/pool.hpp"
#include "pg/watchdog.hpp"
#include "pgelect/options.hpp"

namespace pgelect::detail {

class PgStore final : public LockStore {
public:
    // Nothing connects here.  Throws InvalidArgumentError for bad options or DSN.
    PgStore(const std::string& dsn, const LockClientOptions& options);
    ~PgStore() override;

    void create_table() override;
    void try_create_table() override;
    void drop_table() override;
    std::int64_t bump_epoch(std::int64_t above) override;
    TakeOutcome try_take(const std::string& name, const std::string& owner,
                                  const AcquireOptions& options,
                                  std::optional<std::int64_t> stale_rvn) override;
    std::unordered_map<std::string, PolledRow> poll(const std::vector<std::string>& names) override;
    std::vector<Renewed> renew(const std::vector<RenewItem>& items, RenewVia via) override;
    bool release(const std::string& name, std::int64_t fencing_token, const std::string& owner,
                 bool keep) override;
    bool set_data(const std::string& name, std::int64_t fencing_token, const std::string& owner,
                  const std::string& data) override;
    LockInfo get(const std::string& name) override;
    std::vector<LockInfo> get_all() override;
    ReplicationInfo replication_info() override;

    void set_listeners(Listeners listeners) override;
    void ensure_listening(std::chrono::milliseconds wait) override;
    void stop_listening() override;
    void close_idle() override;
    void warm_renewal() override;

private:
    std::string context(const char* operation, const std::string& name) const {
        return lock_context(operation, name, table_);
    }

    // Runs fn(tx) on a pooled connection: a broken connection is replaced and
    // the statement tried once more, serialization failures are retried, and
    // every libpqxx error becomes a pgelect::Error naming `ctx`.  With
    // `warning`, the first warning the server sent with a successful answer
    // is stored there (empty: none).
    template <class Tx, class Fn>
    auto run(ConnectionPool& pool, const std::string& ctx, Fn&& fn, std::string* warning = nullptr);

    // A write answered with a warning: reported to the listener; the message
    // of the UnavailableError the caller throws.
    std::string unknown_outcome(const char* operation, const std::vector<std::string>& names,
                                const std::string& ctx, const std::string& warning,
                                const char* consequence);

    // The NOTIFY channel, derived from the table the server resolves the name
    // to (search_path applied), so every spelling of one table shares it.
    // Resolved once, on first use; until the table exists, the spelling's.
    std::string channel(pqxx::transaction_base& tx);

    ReplicationInfo read_replication(pqxx::transaction_base& tx) const;
    // On the client's first connection: a warning through the log sink if a
    // promotion may lose writes this server acknowledges.  Never throws.
    void check_replication(pqxx::connection& conn);

    // A statement: prepared on the connection, or unnamed (transaction pooling).
    template <class... Args>
    pqxx::result exec(pqxx::transaction_base& tx, const char* name, const std::string& text,
                      Args&&... args) {
        if (unnamed_) return tx.exec_params(text, std::forward<Args>(args)...);
        return tx.exec_prepared(name, std::forward<Args>(args)...);
    }

    // constant after construction
    const LockClientOptions options_;
    const TableName table_;
    const Statements sql_;
    const bool unnamed_;  // transaction pooling: no prepared statements

    const ConnInfo conninfo_;
    const ConnInfo renew_conninfo_;   // the same with the renewal statement timeout
    const ConnInfo listen_conninfo_;  // listen_dsn, or the client's DSN
    const bool listening_;            // false: transaction pooling without a listen_dsn

    StatementWatchdog watchdog_;  // before the pools: they use it until destroyed
    ConnectionPool pool_;        // acquire / release / reads
    ConnectionPool renew_pool_;  // the renewal thread's own connection
    Listeners listeners_;        // written before the listener starts
    std::mutex channel_mu_;
    std::string channel_;  // guarded by channel_mu_: empty until resolved
    std::atomic<bool> replication_checked_{false};  // the first connection warns about it
    Listener listener_;
};

}  // namespace pgelect::detail
