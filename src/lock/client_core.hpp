// The implementation behind LockClient and Lock.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <pqxx/nontransaction>

#include "lock/lock_state.hpp"
#include "lock/names.hpp"
#include "lock/renewer.hpp"
#include "lock/statements.hpp"
#include "lock/tracker.hpp"
#include "lock/wait_board.hpp"
#include "pg/conninfo.hpp"
#include "pg/listener.hpp"
#include "pg/pool.hpp"
#include "pg/watchdog.hpp"
#include "pgelect/lock.hpp"
#include "pgelect/lock_client.hpp"
#include "pgelect/options.hpp"

namespace pgelect::detail {

class ClientCore : public std::enable_shared_from_this<ClientCore> {
public:
    ClientCore(const std::string& dsn, LockClientOptions options);
    ~ClientCore();

    // Releases every held lock (best effort) and joins all threads.  Idempotent.
    void shutdown();

    void create_table();
    void try_create_table();
    void drop_table();

    Lock acquire(const std::string& name, const AcquireOptions& options, std::stop_token stop);
    LockInfo get(const std::string& name);
    std::vector<LockInfo> get_all();
    void heartbeat(const std::shared_ptr<LockState>& state);
    // `cause` is what the handle reports once the row is released.
    void release(const std::shared_ptr<LockState>& state, LossCause cause = LossCause::released);
    void abandon(const std::shared_ptr<LockState>& state);
    void set_data(const std::shared_ptr<LockState>& state, const std::string& data);

    // Set once by LockClient before any lock is taken; cleared at shutdown.
    struct Hooks {
        std::function<void(const RenewalReport&)> renewal;
        std::function<bool()> renewal_wanted;  // false: nobody listens, skip building reports
        std::function<void(const std::string&, AttemptResult)> attempt;
    };
    void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }

    const LockClientOptions& options() const { return options_; }
    const std::string& owner() const { return owner_; }
    const TableName& table() const { return table_; }

private:
    struct Row {
        std::optional<std::int64_t> rvn;
        std::string owner;
        std::optional<std::int64_t> fencing_token;
    };
    struct Taken {
        std::int64_t rvn;
        std::int64_t fencing_token;
        std::string data;
    };

    std::optional<Taken> try_take(const std::string& name, const std::string& owner,
                                  const AcquireOptions& options,
                                  std::optional<std::int64_t> stale_rvn);
    std::optional<Row> poll(const std::string& name);
    std::vector<Renewed> renew(ConnectionPool& pool, const std::vector<RenewItem>& items);
    std::vector<Renewed> renew_statement(ConnectionPool& pool, const std::vector<RenewItem>& items);
    void lose(const std::shared_ptr<LockState>& state, LossCause cause, const std::string& reason);
    void on_notification(const std::string& payload);
    std::string context(const char* operation, const std::string& name) const;

    // Runs fn(tx) on a pooled connection: a broken connection is replaced and
    // the statement tried once more, serialization failures are retried, and
    // every libpqxx error becomes a pgelect::Error naming `ctx`.
    template <class Tx, class Fn>
    auto run(ConnectionPool& pool, const std::string& ctx, Fn&& fn);

    // constant after construction
    const LockClientOptions options_;
    const TableName table_;
    const Statements sql_;
    const std::string owner_;
    const std::string channel_;
    const ConnInfo conninfo_;

    StatementWatchdog watchdog_;  // before the pools: they use it until destroyed
    ConnectionPool pool_;        // acquire / release / reads
    ConnectionPool renew_pool_;  // the renewal thread's own connection
    ObservationTracker tracker_;
    WaitBoard board_;
    Listener listener_;
    Renewer renewer_;
    std::atomic<bool> shut_down_{false};
    Hooks hooks_;  // written before threads start and after they are joined
};

}  // namespace pgelect::detail
