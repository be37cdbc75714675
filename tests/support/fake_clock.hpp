// A clock for unit tests: time stands still until the test advances it.
// Threads waiting on it (the renewer, the deadline timer, a waiting contender)
// are woken by advance() and re-read now(), so what they do depends only on
// the instants the test chooses, not on how fast the machine is.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stop_token>
#include <set>
#include <thread>
#include <unordered_map>

#include "lock/clock.hpp"

namespace pgelect_test {

class FakeClock final : public pgelect::detail::Clock {
public:
    explicit FakeClock(time_point start = time_point{} + std::chrono::hours(1000)) : now_(start) {}

    time_point now() const override {
        std::lock_guard lk(mu_);
        return now_;
    }

    // Moves time forward and wakes every waiter.
    void advance(duration d) {
        std::lock_guard lk(mu_);
        now_ += d;
        ++advances_;
        seen_.clear();
        notify_locked();
    }

    // Waits (up to `timeout` of real time) until `threads` different threads
    // have started a wait on this clock since the last advance(): each of them
    // has then re-read the new time and done what it had to do at it.  The
    // test so depends on instants, not on how fast the machine is.
    bool settle(std::size_t threads, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        std::unique_lock lk(mu_);
        return settled_.wait_for(lk, timeout, [&] { return seen_.size() >= threads; });
    }

    // Waits (up to `timeout` of real time) until every thread that has ever
    // waited on this clock, and is not ignored, has started a wait since the
    // last advance(): for tests whose threads all come back to this clock.
    bool settle_all(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        std::unique_lock lk(mu_);
        return settled_.wait_for(lk, timeout, [&] {
            for (const auto& id : known_) {
                if (!seen_.count(id)) return false;
            }
            return true;
        });
    }

    // advance(d), then settle() for every thread that was waiting before it,
    // and at least `threads` (e.g. 2: a client's renewal and deadline threads,
    // which may not have started their first wait yet).
    void step(duration d, std::size_t threads = 0) {
        const std::size_t waiting = std::max(waiters(), threads);
        advance(d);
        settle(waiting);
    }

    // Threads currently waiting on this clock (not counting ignored ones).
    std::size_t waiters() const {
        std::lock_guard lk(mu_);
        std::size_t n = 0;
        for (const auto& [_, count] : cvs_) n += count;
        for (const auto& [_, count] : any_cvs_) n += count;
        return n - ignored_waiting_;
    }

    // The calling thread's waits no longer count for waiters() and settle():
    // for a thread that also blocks elsewhere (on real time, or an idle
    // queue), which settle() would otherwise wait for in vain.
    void ignore_this_thread() {
        std::lock_guard lk(mu_);
        const auto id = std::this_thread::get_id();
        if (!ignored_.insert(id).second) return;
        known_.erase(id);
        // A settle() under way may count on this thread: it is done.
        if (seen_.insert(id).second) settled_.notify_all();
    }

    void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lk,
                    time_point deadline) override {
        bool ignored;
        {
            std::lock_guard clk(mu_);
            if (now_ >= deadline) return;
            ++cvs_[&cv];
            ignored = begin_wait_locked();
        }
        // An advance() between the registration above and this wait would be
        // missed; the short real-time bound makes the caller re-read now().
        cv.wait_for(lk, kBackstop);
        std::lock_guard clk(mu_);
        if (--cvs_[&cv] == 0) cvs_.erase(&cv);
        if (ignored) --ignored_waiting_;
    }

    bool wait_until(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lk,
                    std::stop_token stop, time_point deadline,
                    const std::function<bool()>& pred) override {
        for (;;) {
            if (pred()) return true;
            if (stop.stop_requested()) return false;
            bool ignored;
            std::uint64_t advances;
            {
                std::lock_guard clk(mu_);
                if (now_ >= deadline) return false;
                ++any_cvs_[&cv];
                ignored = begin_wait_locked();
                advances = advances_;
            }
            // Woken by advance() too, not only when pred() holds: the caller
            // re-reads now() at once instead of after the backstop.
            cv.wait_for(lk, stop, kBackstop, [&] {
                if (pred()) return true;
                std::lock_guard clk(mu_);
                return advances_ != advances;
            });
            std::lock_guard clk(mu_);
            if (--any_cvs_[&cv] == 0) any_cvs_.erase(&cv);
            if (ignored) --ignored_waiting_;
        }
    }

private:
    static constexpr std::chrono::milliseconds kBackstop{2};

    // Counts the calling thread as waiting (and as having seen now_), unless
    // it is ignored.  Returns whether it is.
    bool begin_wait_locked() {
        const auto id = std::this_thread::get_id();
        if (ignored_.count(id)) {
            ++ignored_waiting_;
            return true;
        }
        known_.insert(id);
        if (seen_.insert(id).second) settled_.notify_all();
        return false;
    }

    void notify_locked() {
        // Under mu_: a registered variable outlives its registration.
        for (auto& [cv, _] : cvs_) cv->notify_all();
        for (auto& [cv, _] : any_cvs_) cv->notify_all();
    }

    mutable std::mutex mu_;
    time_point now_;                                                   // guarded by mu_
    std::uint64_t advances_ = 0;                                       // guarded by mu_
    std::unordered_map<std::condition_variable*, int> cvs_;            // guarded by mu_
    std::unordered_map<std::condition_variable_any*, int> any_cvs_;    // guarded by mu_
    std::set<std::thread::id> seen_;  // guarded by mu_: waited since the last advance()
    std::set<std::thread::id> ignored_;  // guarded by mu_
    std::set<std::thread::id> known_;    // guarded by mu_: have waited, not ignored
    std::size_t ignored_waiting_ = 0;    // guarded by mu_: ignored threads waiting now
    std::condition_variable settled_;
};

}  // namespace pgelect_test
