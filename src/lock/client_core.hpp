// The implementation behind LockClient and Lock: the lease protocol (when to
// try, poll, renew, give up) over an injected LockStore and Clock.  It never
// talks to the database itself.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "lock/clock.hpp"
#include "lock/dispatcher.hpp"
#include "lock/lock_state.hpp"
#include "lock/names.hpp"
#include "lock/poller.hpp"
#include "lock/renewer.hpp"
#include "lock/store.hpp"
#include "lock/tracker.hpp"
#include "lock/wait_board.hpp"
#include "pgelect/lock.hpp"
#include "pgelect/lock_client.hpp"
#include "pgelect/options.hpp"

namespace pgelect::detail {

class ClientCore : public std::enable_shared_from_this<ClientCore> {
public:
    // Throws InvalidArgumentError for bad options.
    ClientCore(std::shared_ptr<LockStore> store, std::shared_ptr<Clock> clock,
               LockClientOptions options);
    ~ClientCore();

    // Releases every held lock (best effort) and joins all threads.  Idempotent.
    void shutdown();

    void create_table();
    void try_create_table();
    void drop_table();
    std::int64_t bump_epoch(std::int64_t above);

    Lock acquire(const std::string& name, const AcquireOptions& options, std::stop_token stop);
    LockInfo get(const std::string& name);
    std::vector<LockInfo> get_all();
    ReplicationInfo replication_info() { return store_->replication_info(); }
    void heartbeat(const std::shared_ptr<LockState>& state);
    // `cause` is what the handle reports once the row is released.
    void release(const std::shared_ptr<LockState>& state, LossCause cause = LossCause::released);
    void abandon(const std::shared_ptr<LockState>& state);
    // For a handle dropped after its lock was lost or expired: takes it out of
    // the renewal set at once (and reports an expiry not reported yet).
    void forget(const std::shared_ptr<LockState>& state);
    void set_data(const std::shared_ptr<LockState>& state, const std::string& data);

    // Set once by LockClient before any lock is taken; cleared at shutdown.
    struct Hooks {
        std::function<void(const RenewalReport&)> renewal;
        std::function<bool()> renewal_wanted;  // false: nobody listens, skip building reports
        std::function<void(const std::string&, AttemptResult)> attempt;
        std::function<void(const UnknownOutcome&)> unknown_outcome;
        std::function<void(std::int64_t)> timeline;
    };
    void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }

    const LockClientOptions& options() const { return options_; }
    const std::string& owner() const { return owner_; }
    const TableName& table() const { return table_; }
    Clock& clock() const { return *clock_; }

private:
    std::vector<Renewed> renew(RenewVia via, const std::vector<RenewItem>& items);
    // Ends the lock on the calling thread: marks it released (every belief
    // API turns false), drops it from the renewal set, fires lost_token.
    void lose(const std::shared_ptr<LockState>& state, LossCause cause, const std::string& reason);
    // The same for losses noticed on the renewal or deadline thread: lost_token
    // fires on a dispatcher worker (user callbacks never run on those threads),
    // followed, after a loss by deadline or failed renewals, by a best-effort
    // conditional release so followers need not wait out the lease.
    void lose_in_background(const std::shared_ptr<LockState>& state, LossCause cause,
                            const std::string& reason);
    std::string deadline_reason(const LockState& state) const;
    void on_notification(const std::string& payload);
    std::string context(const char* operation, const std::string& name) const;

    // constant after construction
    const LockClientOptions options_;
    const TableName table_;
    const std::string owner_;
    const std::shared_ptr<LockStore> store_;
    const std::shared_ptr<Clock> clock_;

    ObservationTracker tracker_;
    WaitBoard board_;
    Poller poller_;  // after the board: it answers through it
    Dispatcher dispatcher_;  // before the renewer: its threads post here
    Renewer renewer_;
    std::atomic<bool> shut_down_{false};
    Hooks hooks_;  // written before threads start and after they are joined
};

}  // namespace pgelect::detail
