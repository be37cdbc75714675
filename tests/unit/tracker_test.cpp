// ObservationTracker: when a contender may take over an unchanged lock.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "lock/tracker.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::detail::ObservationTracker;
using Clock = ObservationTracker::Clock;

const Clock::time_point t0 = Clock::time_point{} + 1000h;  // arbitrary fixed origin

TEST(ObservationTracker, FirstObservationReturnsNow) {
    ObservationTracker tr;
    EXPECT_EQ(tr.observe("a", 7, t0), t0);
}

TEST(ObservationTracker, SameVersionKeepsFirstSeenTime) {
    ObservationTracker tr;
    tr.observe("a", 7, t0);
    EXPECT_EQ(tr.observe("a", 7, t0 + 3s), t0);
    EXPECT_EQ(tr.observe("a", 7, t0 + 30s), t0);
}

TEST(ObservationTracker, ChangedVersionResetsFirstSeenTime) {
    ObservationTracker tr;
    tr.observe("a", 7, t0);
    EXPECT_EQ(tr.observe("a", 8, t0 + 5s), t0 + 5s);
    EXPECT_EQ(tr.observe("a", 8, t0 + 6s), t0 + 5s);
    // Going back to an older value is a change too.
    EXPECT_EQ(tr.observe("a", 7, t0 + 7s), t0 + 7s);
}

TEST(ObservationTracker, NamesAreIndependent) {
    ObservationTracker tr;
    tr.observe("a", 1, t0);
    EXPECT_EQ(tr.observe("b", 1, t0 + 1s), t0 + 1s);
    EXPECT_EQ(tr.observe("a", 1, t0 + 2s), t0);
    EXPECT_EQ(tr.observe("b", 1, t0 + 3s), t0 + 1s);
}

TEST(ObservationTracker, StaleVersionOnlyAfterAFullLease) {
    ObservationTracker tr;
    const auto lease = 15s;
    EXPECT_EQ(tr.stale_version("a", t0, lease), std::nullopt);  // never seen
    tr.observe("a", 42, t0);
    EXPECT_EQ(tr.stale_version("a", t0, lease), std::nullopt);
    EXPECT_EQ(tr.stale_version("a", t0 + lease - 1ns, lease), std::nullopt);
    EXPECT_EQ(tr.stale_version("a", t0 + lease, lease), std::optional<std::int64_t>(42));
    EXPECT_EQ(tr.stale_version("a", t0 + lease + 1h, lease), std::optional<std::int64_t>(42));
    // Another name is unaffected.
    EXPECT_EQ(tr.stale_version("b", t0 + lease, lease), std::nullopt);
}

TEST(ObservationTracker, RenewalRestartsTheLeaseClock) {
    ObservationTracker tr;
    const auto lease = 10s;
    tr.observe("a", 1, t0);
    tr.observe("a", 2, t0 + 9s);  // the holder renewed
    EXPECT_EQ(tr.stale_version("a", t0 + 10s, lease), std::nullopt);
    EXPECT_EQ(tr.stale_version("a", t0 + 18s, lease), std::nullopt);
    EXPECT_EQ(tr.stale_version("a", t0 + 19s, lease), std::optional<std::int64_t>(2));
}

TEST(ObservationTracker, ForgetDropsTheObservation) {
    ObservationTracker tr;
    tr.observe("a", 1, t0);
    tr.observe("b", 1, t0);
    tr.forget("a");
    EXPECT_EQ(tr.stale_version("a", t0 + 1h, 1s), std::nullopt);
    EXPECT_EQ(tr.stale_version("b", t0 + 1h, 1s), std::optional<std::int64_t>(1));
    // After forgetting, the same version counts as a fresh sighting.
    EXPECT_EQ(tr.observe("a", 1, t0 + 5s), t0 + 5s);
    tr.forget("never-seen");  // no effect, no crash
}

TEST(ObservationTracker, ConcurrentUseIsSafe) {
    ObservationTracker tr;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&tr, t] {
            for (int i = 0; i < 2000; ++i) {
                const std::string name = "n" + std::to_string(i % 16);
                tr.observe(name, i % 3, t0 + std::chrono::milliseconds(i));
                tr.stale_version(name, t0 + std::chrono::milliseconds(i), 1s);
                if (i % 97 == t) tr.forget(name);
            }
        });
    }
    for (auto& th : threads) th.join();
    tr.observe("z", 5, t0);
    EXPECT_EQ(tr.observe("z", 5, t0 + 1s), t0);
}

}  // namespace
