// The Elector's safety rules over an in-memory store and a fake clock: what
// every belief API says at the moment the release statement is sent, which
// term a resign ends, and which terms are announced.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "fake_clock.hpp"
#include "fake_client.hpp"
#include "fake_store.hpp"
#include "lock/client_factory.hpp"
#include "pgelect/elector.hpp"
#include "pgelect/lock_client.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::Elector;
using pgelect::ElectorOptions;
using pgelect::Leadership;
using pgelect::LossInfo;
using pgelect_test::eventually;
using pgelect_test::FakeClock;
using pgelect_test::FakeStore;
using Op = FakeStore::Op;

class FakeElectorTest : public pgelect_test::FakeClientTest {
protected:
    // Retry 50 ms: the resign stand-aside is two of these, in real time.
    FakeElectorTest() : FakeClientTest(50ms) {}
    ElectorOptions group(const std::string& identity = "me") {
        ElectorOptions o;
        o.group = "g";
        o.identity = identity;
        return o;
    }
};

TEST_F(FakeElectorTest, ResignEndsEveryBeliefBeforeTheReleaseIsSent) {
    Elector e(*client_, group());
    std::mutex mu;
    std::stop_token term;
    std::atomic<int> became{0};
    e.become_leader.connect([&](const Leadership& l) {
        std::lock_guard lk(mu);
        term = l.stop_token;
        ++became;
    });
    std::atomic<bool> sampled{false};
    std::atomic<bool> any_belief{true};
    std::atomic<bool> sample_done{false};
    std::string what;
    store_->before(Op::release, [&] {
        if (sampled.exchange(true)) return;
        std::lock_guard lk(mu);
        const bool a = e.is_leader(), b = e.leadership().has_value(), c = e.wait_for_leadership(0ms),
                   d = !term.stop_requested();
        what = std::to_string(a) + std::to_string(b) + std::to_string(c) + std::to_string(d);
        any_belief = a || b || c || d;
        sample_done = true;
    });
    e.start();
    ASSERT_TRUE(eventually([&] { return became.load() == 1; }, 5s));
    e.resign(std::chrono::hours(1));  // a cooldown: no second term to confuse the sample
    ASSERT_TRUE(eventually([&] { return sample_done.load(); }, 5s));
    std::lock_guard lk(mu);
    EXPECT_FALSE(any_belief.load()) << "a belief API still said leader when the release was sent: "
                                    << "is_leader, leadership, wait_for_leadership, term running = "
                                    << what;
    e.stop();
}

TEST_F(FakeElectorTest, StopEndsEveryBeliefBeforeTheReleaseIsSent) {
    Elector e(*client_, group());
    std::atomic<int> became{0};
    e.become_leader.connect([&](const Leadership&) { ++became; });
    std::atomic<bool> believed_at_release{true};
    store_->before(Op::release, [&] { believed_at_release = e.is_leader() || e.leadership(); });
    e.start();
    ASSERT_TRUE(eventually([&] { return became.load() == 1; }, 5s));
    e.stop();
    EXPECT_EQ(store_->calls(Op::release), 1);
    EXPECT_FALSE(believed_at_release.load());
}

TEST_F(FakeElectorTest, SecondResignDuringTheReleaseEndsOnlyTheFirstTerm) {
    Elector e(*client_, group());
    std::atomic<int> became{0}, lost{0};
    e.become_leader.connect([&](const Leadership&) { ++became; });
    e.lost_leadership.connect([&](const LossInfo&) { ++lost; });
    std::atomic<bool> once{false};
    store_->before(Op::release, [&] {
        if (!once.exchange(true)) e.resign();  // while the first release is in flight
    });
    e.start();
    ASSERT_TRUE(eventually([&] { return became.load() == 1; }, 5s));
    e.resign();
    ASSERT_TRUE(eventually([&] { return became.load() == 2; }, 5s));
    for (int i = 0; i < 5; ++i) clock_->step(2s, 2);  // heartbeats of the next term
    EXPECT_EQ(lost.load(), 1) << "the second resign ended the next term";
    EXPECT_TRUE(e.is_leader());
    e.stop();
}

TEST_F(FakeElectorTest, TermEndedBeforeItIsAnnouncedGetsNoSignalAndIsGivenBack) {
    Elector e(*client_, group());
    std::atomic<int> became{0}, lost{0};
    std::atomic<bool> won{false};
    e.leader_changed.connect([&](const std::optional<pgelect::LeaderInfo>& info) {
        if (info && info->identity == "me") {
            e.stop();
            won = true;
        }
    });
    e.become_leader.connect([&](const Leadership&) { ++became; });
    e.lost_leadership.connect([&](const LossInfo&) { ++lost; });
    e.start();
    ASSERT_TRUE(eventually([&] { return won.load(); }, 5s));
    e.stop();
    EXPECT_EQ(became.load(), 0);
    EXPECT_EQ(lost.load(), 0);
    ASSERT_TRUE(store_->row("g").has_value());
    EXPECT_FALSE(store_->row("g")->rvn.has_value()) << "the unannounced term was not given back";
}

TEST_F(FakeElectorTest, DataSetWhileFollowingIsTheNextTermsData) {
    store_->take_as("g", "other");
    auto o = group();
    o.data = "old";
    Elector e(*client_, o);
    e.start();
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::poll) >= 1; }, 5s));
    e.set_data("new");
    store_->release_as_other("g");
    ASSERT_TRUE(eventually([&] { return e.is_leader(); }, 5s));
    ASSERT_TRUE(store_->row("g").has_value());
    EXPECT_EQ(store_->row("g")->data.value_or(""), "new");
    e.stop();
}

}  // namespace
