// The LockStore on PostgreSQL (libpqxx): the prepared statements, a connection
// pool for acquire/release/reads, the renewal thread's own connection, the
// statement watchdog and the LISTEN connection.
#pragma once

#include <chrono>
#include <string>

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
    std::optional<PolledRow> poll(const std::string& name) override;
    std::vector<Renewed> renew(const std::vector<RenewItem>& items, RenewVia via) override;
    bool release(const std::string& name, std::int64_t fencing_token, const std::string& owner,
                 bool keep) override;
    bool set_data(const std::string& name, std::int64_t fencing_token, const std::string& owner,
                  const std::string& data) override;
    LockInfo get(const std::string& name) override;
    std::vector<LockInfo> get_all() override;

    void set_listeners(Listeners listeners) override;
    void ensure_listening(std::chrono::milliseconds wait) override;
    void stop_listening() override;
    void close_idle() override;

private:
    std::string context(const char* operation, const std::string& name) const {
        return lock_context(operation, name, table_);
    }

    // Runs fn(tx) on a pooled connection: a broken connection is replaced and
    // the statement tried once more, serialization failures are retried, and
    // every libpqxx error becomes a pgelect::Error naming `ctx`.
    template <class Tx, class Fn>
    auto run(ConnectionPool& pool, const std::string& ctx, Fn&& fn);

    // The NOTIFY channel, derived from the table the server resolves the name
    // to (search_path applied), so every spelling of one table shares it.
    // Resolved once, on first use; until the table exists, the spelling's.
    std::string channel(pqxx::transaction_base& tx);

    // constant after construction
    const LockClientOptions options_;
    const TableName table_;
    const Statements sql_;

    const ConnInfo conninfo_;
    const ConnInfo renew_conninfo_;  // the same with the renewal statement timeout

    StatementWatchdog watchdog_;  // before the pools: they use it until destroyed
    ConnectionPool pool_;        // acquire / release / reads
    ConnectionPool renew_pool_;  // the renewal thread's own connection
    Listeners listeners_;        // written before the listener starts
    std::mutex channel_mu_;
    std::string channel_;  // guarded by channel_mu_: empty until resolved
    Listener listener_;
};

}  // namespace pgelect::detail
