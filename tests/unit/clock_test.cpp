// Clock::to_steady(): the public API reports lease ends (Lock::valid_until(),
// LossInfo::valid_until) on std::chrono::steady_clock, converted from the
// protocol's clock.  A thread preempted between the two clock reads must not
// make a lease look longer than it is.
#include <gtest/gtest.h>

#include <thread>

#include "lock/clock.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::detail::Clock;

// The real clock, but now() is slow to return what it read (as if the
// thread was preempted right after reading the clock).
class LaggingClock final : public Clock {
public:
    time_point now() const override {
        const auto t = real_->now();
        std::this_thread::sleep_for(30ms);
        return t;
    }
    void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, time_point deadline) override {
        real_->wait_until(cv, lk, deadline);
    }
    bool wait_until(std::condition_variable_any& cv, std::unique_lock<std::mutex>& lk, std::stop_token stop,
                    time_point deadline, const std::function<bool()>& pred) override {
        return real_->wait_until(cv, lk, stop, deadline, pred);
    }

private:
    std::shared_ptr<Clock> real_ = pgelect::detail::real_clock();
};

TEST(ClockTest, SteadyInstantOfALeaseEndIsNeverLaterThanTheTruth) {
    const auto real = pgelect::detail::real_clock();
    LaggingClock lagging;
    for (int i = 0; i < 3; ++i) {
        const auto steady_before = std::chrono::steady_clock::now();
        const auto lease_end = real->now() + 1s;
        const auto mapped = lagging.to_steady(lease_end);
        // The true steady instant is steady_before + 1 s, give or take the
        // microseconds between the two reads above.
        EXPECT_LE(mapped, steady_before + 1s + 5ms)
            << "mapped " << std::chrono::duration_cast<std::chrono::microseconds>(mapped - steady_before).count()
            << " us after the lease began, for a 1 s lease";
    }
}

}  // namespace
