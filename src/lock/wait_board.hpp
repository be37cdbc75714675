// Where contenders wait for a lock to be released.  Each name with waiters has
// a generation counter; a release (local, or a NOTIFY from another client)
// bumps it and wakes the waiters.  A waiter reads the generation before it
// polls the row, so a release between its poll and its wait is never missed.
// Each name has its own condition variable: a release of one name does not
// wake the waiters of the others.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <unordered_map>

#include "lock/clock.hpp"

namespace pgelect::detail {

class WaitBoard {
public:
    using Clock = BootClock;

    // Waits read and wait on `clock`.
    explicit WaitBoard(std::shared_ptr<detail::Clock> clock = real_clock())
        : clock_(std::move(clock)) {}

    // Keeps `name` on the board while a contender waits for it.
    class Registration {
    public:
        Registration(WaitBoard& board, std::string name) : board_(board), name_(std::move(name)) {
            std::lock_guard lk(board_.mu_);
            ++board_.entries_[name_].waiters;
        }
        ~Registration() {
            std::lock_guard lk(board_.mu_);
            auto it = board_.entries_.find(name_);
            if (--it->second.waiters == 0) board_.entries_.erase(it);
        }
        Registration(const Registration&) = delete;
        Registration& operator=(const Registration&) = delete;

    private:
        WaitBoard& board_;
        std::string name_;
    };

    // Releases of `name` seen so far, plus wake_all() calls in the high half.
    // A waiter compares the low half to tell "released" (worth trying to take
    // at once) from "notifications may have been missed" (worth a read).
    struct Generation {
        std::uint64_t released = 0;
        std::uint64_t changed = 0;  // acquired by someone: worth a read, not an attempt
        std::uint64_t all = 0;
        bool operator==(const Generation&) const = default;
    };

    Generation generation(const std::string& name) {
        std::lock_guard lk(mu_);
        return generation_locked(name);
    }

    void wake(const std::string& name) {
        {
            std::lock_guard lk(mu_);
            auto it = entries_.find(name);
            if (it == entries_.end()) return;
            ++it->second.generation;
            it->second.cv.notify_all();
        }
    }

    // `name` changed hands (acquired elsewhere): waiters re-read it.
    void touch(const std::string& name) {
        {
            std::lock_guard lk(mu_);
            auto it = entries_.find(name);
            if (it == entries_.end()) return;
            ++it->second.changed;
            it->second.cv.notify_all();
        }
    }

    // A read of `name` was answered (Poller): its waiters check their request.
    void answered(const std::string& name) {
        std::lock_guard lk(mu_);
        auto it = entries_.find(name);
        if (it != entries_.end()) it->second.cv.notify_all();
    }

    // Wakes everyone, e.g. after the LISTEN connection was re-established.
    void wake_all() {
        std::lock_guard lk(mu_);
        ++all_;
        for (auto& [name, entry] : entries_) entry.cv.notify_all();
        unregistered_cv_.notify_all();
    }

    // Returns when the generation of `name` differs from `seen`, `also()`
    // holds (checked under the board's lock when the name's waiters are
    // woken), at `deadline`, or when `stop` is triggered.
    void wait(const std::string& name, Generation seen, Clock::time_point deadline,
              std::stop_token stop, const std::function<bool()>& also = {}) {
        std::unique_lock lk(mu_);
        // The entry stays put while its waiter holds a Registration (unordered_map
        // nodes do not move); waiting without one falls back to a shared variable.
        auto it = entries_.find(name);
        auto& cv = it == entries_.end() ? unregistered_cv_ : it->second.cv;
        clock_->wait_until(cv, lk, stop, deadline,
                           [&] { return !(generation_locked(name) == seen) || (also && also()); });
    }

private:
    Generation generation_locked(const std::string& name) const {
        auto it = entries_.find(name);
        if (it == entries_.end()) return {0, 0, all_};
        return {it->second.generation, it->second.changed, all_};
    }

    struct Entry {
        int waiters = 0;
        std::uint64_t generation = 0;
        std::uint64_t changed = 0;
        std::condition_variable_any cv;
    };
    const std::shared_ptr<detail::Clock> clock_;  // constant after construction
    std::mutex mu_;
    std::condition_variable_any unregistered_cv_;  // waiters without a Registration
    std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
    std::uint64_t all_ = 0;                           // guarded by mu_
};

}  // namespace pgelect::detail
