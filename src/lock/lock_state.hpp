// The shared state of one held lock: seen by its Lock handle, the renewal
// engine and the deadline timer.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <string>

#include <optional>

#include "lock/clock.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock.hpp"
#include "pgelect/options.hpp"

namespace pgelect::detail {

struct LockState {
    using Clock = BootClock;  // valid_until and next_renewal are on the client's Clock

    LockState(std::string name_, std::string owner_, LeaseTiming timing_, bool keep)
        : name(std::move(name_)), owner(std::move(owner_)), timing(timing_), keep_on_release(keep) {}

    // constant after construction
    const std::string name;
    const std::string owner;
    const LeaseTiming timing;
    const bool keep_on_release;
    std::stop_source lost;  // thread-safe on its own; fired once, after `released` is set

    // guarded by mu
    mutable std::mutex mu;
    std::int64_t fencing_token = 0;
    std::int64_t record_version_number = 0;
    std::string data;
    Clock::time_point valid_until{};
    Clock::time_point next_renewal{};
    bool released = false;
    LossCause cause = LossCause::none;
    std::string release_reason;
    // Kind of the error of the last failed renewal since the last success.
    std::optional<ErrorKind> renewal_error;

    bool automatic_renewal() const { return timing.heartbeat_interval.count() > 0; }

    // A renewal that started at `start` succeeded and set `rvn`.
    void renewed(Clock::time_point start, std::int64_t rvn) {
        std::lock_guard lk(mu);
        if (released) return;
        record_version_number = rvn;
        renewal_error.reset();
        if (start + timing.renew_deadline > valid_until) valid_until = start + timing.renew_deadline;
        next_renewal = start + timing.heartbeat_interval;
    }

    // Marks the lock released.  Returns false if it already was.  The caller
    // fires `lost` afterwards, outside any lock.
    bool mark_released(LossCause why, const std::string& reason) {
        std::lock_guard lk(mu);
        if (released) return false;
        released = true;
        cause = why;
        release_reason = reason;
        return true;
    }

    // The cause to report when the renew deadline passes.
    LossCause deadline_cause() const {
        std::lock_guard lk(mu);
        if (!renewal_error) return LossCause::deadline_passed;
        return *renewal_error == ErrorKind::unavailable ? LossCause::database_unavailable
                                                       : LossCause::renewal_failed;
    }

    bool valid(Clock::time_point now) const {
        std::lock_guard lk(mu);
        return !released && now < valid_until;
    }
};

}  // namespace pgelect::detail
