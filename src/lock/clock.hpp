// Time as the lease protocol sees it: an injected clock, so the renewer, the
// deadline timer and the acquire loop run unchanged on a fake clock in tests.
//
// The real clock is Linux CLOCK_BOOTTIME, which keeps counting while the
// machine is suspended: a lease that ran out during a suspend is over when the
// machine wakes up.  Condition variables cannot wait on that clock, so every
// wait is a relative (steady) wait of bounded length, and the caller re-reads
// now() after each one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <ratio>
#include <stop_token>

namespace pgelect::detail {

// A std::chrono clock over CLOCK_BOOTTIME (monotonic, counts suspend time).
struct BootClock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::duration<rep, period>;
    using time_point = std::chrono::time_point<BootClock>;
    static constexpr bool is_steady = true;
    static time_point now() noexcept;
};

// The clock the lock protocol reads and waits on.  Thread safety: all methods
// may be called from any thread.
class Clock {
public:
    using time_point = BootClock::time_point;
    using duration = BootClock::duration;

    virtual ~Clock() = default;

    virtual time_point now() const = 0;

    // One wait on `cv` (whose mutex `lk` holds): returns when `cv` is notified,
    // at `deadline` (time_point::max(): none), or earlier without a reason,
    // with `lk` held again.  The caller re-checks its condition and now().
    virtual void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lk,
                            time_point deadline) = 0;

    // Waits on `cv` until `pred()` holds, `stop` is requested or `deadline`
    // passed.  Returns pred().
    virtual bool wait_until(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lk,
                            std::stop_token stop, time_point deadline,
                            const std::function<bool()>& pred) = 0;

    // The steady-clock instant corresponding to `t` (for the public API, which
    // speaks std::chrono::steady_clock): steady now + (t - now()).  The steady
    // clock is read first: a thread preempted between the two reads then maps
    // `t` earlier than it is, never later (a lease end is never overstated).
    std::chrono::steady_clock::time_point to_steady(time_point t) const {
        if (t == time_point::max()) return std::chrono::steady_clock::time_point::max();
        if (t == time_point::min()) return std::chrono::steady_clock::time_point::min();
        const auto steady = std::chrono::steady_clock::now();
        const auto here = now();
        return steady + std::chrono::duration_cast<std::chrono::steady_clock::duration>(t - here);
    }
};

// The real clock (CLOCK_BOOTTIME), shared by every client.
std::shared_ptr<Clock> real_clock();

}  // namespace pgelect::detail
