// The renewal engine: one thread renews every held lock of a client in one
// statement per tick, and a deadline timer declares a lock lost when the start
// of its last successful renewal plus its renew deadline has passed, even
// while a renewal statement still hangs.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "lock/clock.hpp"
#include "lock/lock_state.hpp"
#include "lock/store.hpp"

namespace pgelect::detail {

// Runs the batched renewal statement.  Returns the locks still held; a lock
// missing from the result was taken over.  Throws when the outcome is unknown
// (connection lost, timeout): the renewal is idempotent and is simply retried.
using RenewFn = std::function<std::vector<Renewed>(const std::vector<RenewItem>&)>;
// Called (outside the engine's lock) once when a lock is lost; `reason` says why.
using LostFn = std::function<void(const std::shared_ptr<LockState>&, LossCause cause,
                                  const std::string& reason)>;

class Renewer {
public:
    // Both threads read and wait on `clock`.
    // `warm` (optional) runs on the renewal thread soon after an add(), before
    // the lock's first renewal is due: it opens the renewal connection then,
    // so that the first renewal does not have to connect (on a loaded machine
    // a new connection can take longer than a renew deadline).  Not again
    // within a second of a warm-up or renewal that succeeded.  Its errors are ignored:
    // the renewal reports them.
    Renewer(RenewFn renew, LostFn on_lost, std::shared_ptr<Clock> clock = real_clock(),
            std::function<void()> warm = {});
    ~Renewer();
    Renewer(const Renewer&) = delete;
    Renewer& operator=(const Renewer&) = delete;

    // Thread safety: all methods may be called from any thread.
    void add(std::shared_ptr<LockState> state);
    void remove(const LockState* state);
    std::vector<std::shared_ptr<LockState>> held() const;
    // Renewal statements run so far (for tests and metrics).
    std::uint64_t ticks() const;
    // Asks both threads to finish (no new renewal starts) without waiting.
    void request_stop();
    // Stops and joins both threads (a statement in flight finishes first);
    // held locks stay registered.
    void stop();

private:
    void renew_loop();
    void deadline_loop();
    void start_threads_locked();
    void report_deadline(const std::shared_ptr<LockState>& state);
    // Calls on_lost_ once per lock, whichever thread finds the loss first.
    void report(const std::shared_ptr<LockState>& state, LossCause cause,
                const std::string& reason);

    // constant after construction
    const RenewFn renew_;
    const LostFn on_lost_;
    const std::shared_ptr<Clock> clock_;
    const std::function<void()> warm_;

    // guarded by mu_
    mutable std::mutex mu_;
    // One condition variable per thread, and the instant each sleeps until, so
    // that add() wakes a thread only when the new lock is due before that.
    std::condition_variable renew_cv_;
    std::condition_variable deadline_cv_;
    BootClock::time_point renew_wakes_at_ = BootClock::time_point::max();
    BootClock::time_point deadline_wakes_at_ = BootClock::time_point::max();
    bool stopping_ = false;
    bool started_ = false;
    bool warm_pending_ = false;
    // Until then the renewal connection is known to work: a warm-up or a
    // renewal succeeded less than kWarmFor before.
    BootClock::time_point works_until_ = BootClock::time_point::min();
    static constexpr std::chrono::seconds kWarmFor{1};
    std::uint64_t ticks_ = 0;
    std::unordered_map<const LockState*, std::shared_ptr<LockState>> held_;
    std::thread renew_thread_;
    std::thread deadline_thread_;
};

}  // namespace pgelect::detail
