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
    // The renewal engine has reported this lock lost (its renewal and deadline
    // threads may both find the deadline passed; one of them reports it).
    bool loss_reported = false;
    LossCause cause = LossCause::none;
    std::string release_reason;
    // Kind of the error of the last failed renewal since the last success.
    std::optional<ErrorKind> renewal_error;

    bool automatic_renewal() const { return timing.heartbeat_interval.count() > 0; }

    enum class Renewal { renewed, already_released, expired };
    // A renewal that started at `start` succeeded at `now` and set `rvn`.  A
    // reply that arrives after the renew deadline revives nothing: expiry by
    // time is final (the caller reports the loss).
    Renewal renewed(Clock::time_point start, std::int64_t rvn, Clock::time_point now) {
        std::lock_guard lk(mu);
        if (released) return Renewal::already_released;
        if (now >= valid_until) return Renewal::expired;
        record_version_number = rvn;
        renewal_error.reset();
        if (start + timing.renew_deadline > valid_until) valid_until = start + timing.renew_deadline;
        next_renewal = start + timing.heartbeat_interval;
        return Renewal::renewed;
    }

    // A renewal could not tell (error, lost reply, row locked by another
    // transaction): try again after `pause`.
    void renewal_unknown(std::optional<ErrorKind> error, Clock::time_point retry_at) {
        std::lock_guard lk(mu);
        if (error) renewal_error = error;
        next_renewal = retry_at;
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

    // Corrects why a released lock ended (e.g. the release found the row taken over).
    void set_cause(LossCause why, const std::string& reason) {
        std::lock_guard lk(mu);
        cause = why;
        release_reason = reason;
    }

    std::string loss_reason() const {
        std::lock_guard lk(mu);
        return released ? release_reason : "renew deadline passed";
    }

    // The cause to report when the renew deadline passes.
    LossCause deadline_cause() const {
        std::lock_guard lk(mu);
        if (!renewal_error) return LossCause::deadline_passed;
        return *renewal_error == ErrorKind::unavailable ? LossCause::database_unavailable
                                                       : LossCause::renewal_failed;
    }

    // Whether the holder may still trust the lease at `now`.  False once
    // released or past the renew deadline, and never true again after that.
    bool valid(Clock::time_point now) const {
        std::lock_guard lk(mu);
        return !released && now < valid_until;
    }

    // The fencing token, if the lock is still valid at `now`.
    std::optional<std::int64_t> valid_token(Clock::time_point now) const {
        std::lock_guard lk(mu);
        if (released || now >= valid_until) return std::nullopt;
        return fencing_token;
    }
};

}  // namespace pgelect::detail
