#include "lock/clock.hpp"

#include <time.h>

#include <algorithm>
#include <system_error>

namespace pgelect::detail {

BootClock::time_point BootClock::now() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_BOOTTIME, &ts);
    return time_point(duration(static_cast<rep>(ts.tv_sec) * 1000000000 + ts.tv_nsec));
}

namespace {

// A relative wait lasts at most this long.  Steady time stands still during a
// suspend, so a longer wait could oversleep a boot-clock deadline by the length
// of the suspend; after each step the caller re-reads the boot clock.
constexpr std::chrono::milliseconds kMaxStep{1000};

class RealClock final : public Clock {
public:
    time_point now() const override { return BootClock::now(); }

    void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lk,
                    time_point deadline) override {
        if (deadline == time_point::max()) {
            cv.wait(lk);  // nothing to be late for: only a notification ends it
            return;
        }
        const auto left = deadline - now();
        if (left <= duration::zero()) return;
        cv.wait_for(lk, std::min<duration>(left, kMaxStep));
    }

    bool wait_until(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lk,
                    std::stop_token stop, time_point deadline,
                    const std::function<bool()>& pred) override {
        for (;;) {
            if (pred()) return true;
            if (stop.stop_requested()) return false;
            const auto left = deadline - now();
            if (left <= duration::zero()) return false;
            cv.wait_for(lk, stop, std::min<duration>(left, kMaxStep), pred);
        }
    }
};

}  // namespace

std::shared_ptr<Clock> real_clock() {
    static const std::shared_ptr<Clock> clock = std::make_shared<RealClock>();
    return clock;
}

}  // namespace pgelect::detail
