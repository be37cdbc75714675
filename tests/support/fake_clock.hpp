// A clock for unit tests: time stands still until the test advances it.
// Threads waiting on it (the renewer, the deadline timer, a waiting contender)
// are woken by advance() and re-read now(), so what they do depends only on
// the instants the test chooses, not on how fast the machine is.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
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

    // advance(d), then settle() for every thread that was waiting before it,
    // and at least `threads` (e.g. 2: a client's renewal and deadline threads,
    // which may not have started their first wait yet).
    void step(duration d, std::size_t threads = 0) {
        const std::size_t waiting = std::max(waiters(), threads);
        advance(d);
        settle(waiting);
    }

    // Threads currently waiting on this clock.
    std::size_t waiters() const {
        std::lock_guard lk(mu_);
        std::size_t n = 0;
        for (const auto& [_, count] : cvs_) n += count;
        for (const auto& [_, count] : any_cvs_) n += count;
        return n;
    }

    void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lk,
                    time_point deadline) override {
        {
            std::lock_guard clk(mu_);
            if (now_ >= deadline) return;
            ++cvs_[&cv];
            mark_seen_locked();
        }
        // An advance() between the registration above and this wait would be
        // missed; the short real-time bound makes the caller re-read now().
        cv.wait_for(lk, kBackstop);
        std::lock_guard clk(mu_);
        if (--cvs_[&cv] == 0) cvs_.erase(&cv);
    }

    bool wait_until(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lk,
                    std::stop_token stop, time_point deadline,
                    const std::function<bool()>& pred) override {
        for (;;) {
            if (pred()) return true;
            if (stop.stop_requested()) return false;
            {
                std::lock_guard clk(mu_);
                if (now_ >= deadline) return false;
                ++any_cvs_[&cv];
                mark_seen_locked();
            }
            cv.wait_for(lk, stop, kBackstop, pred);
            std::lock_guard clk(mu_);
            if (--any_cvs_[&cv] == 0) any_cvs_.erase(&cv);
        }
    }

private:
    static constexpr std::chrono::milliseconds kBackstop{2};

    void mark_seen_locked() {
        if (seen_.insert(std::this_thread::get_id()).second) settled_.notify_all();
    }

    void notify_locked() {
        // Under mu_: a registered variable outlives its registration.
        for (auto& [cv, _] : cvs_) cv->notify_all();
        for (auto& [cv, _] : any_cvs_) cv->notify_all();
    }

    mutable std::mutex mu_;
    time_point now_;                                                   // guarded by mu_
    std::unordered_map<std::condition_variable*, int> cvs_;            // guarded by mu_
    std::unordered_map<std::condition_variable_any*, int> any_cvs_;    // guarded by mu_
    std::set<std::thread::id> seen_;  // guarded by mu_: waited since the last advance()
    std::condition_variable settled_;
};

}  // namespace pgelect_test
