// The safety round's lock-layer scenarios on a fake clock and an in-memory
// store: every reply (lost, late, failed, skipped) arrives at the instant the
// test picks, so each rule is checked exactly at its boundary.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <memory>
#include <string>
#include <thread>

#include "fake_clock.hpp"
#include "fake_client.hpp"
#include "fake_store.hpp"
#include "lock/client_factory.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock_client.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::AcquireOptions;
using pgelect::AlreadyReleasedError;
using pgelect::LockClient;
using pgelect::LossCause;
using pgelect_test::eventually;
using pgelect_test::FakeClock;
using pgelect_test::FakeStore;
using Op = FakeStore::Op;
using Fault = FakeStore::Fault;

constexpr auto kQuiet = 30ms;  // time for the client's threads to react

class FakeSafetyTest : public pgelect_test::FakeClientTest {
protected:
    // Moves the fake clock and waits until the renewal and deadline threads
    // have acted on the new time.
    void step(std::chrono::nanoseconds d) { clock_->step(d, 2); }
    void free_row_by_hand(const std::string& name) {
        // What `UPDATE ... SET record_version_number = NULL` does.
        store_->lock_row(name, false);
        auto row = store_->row(name);
        ASSERT_TRUE(row.has_value());
        store_->release_as_other(name);
    }

};

TEST_F(FakeSafetyTest, ReleaseEndsEveryBeliefBeforeTheStatementIsSent) {
    auto lock = client_->acquire("a");
    std::atomic<bool> believed_during_release{true};
    std::atomic<bool> token_fired_during_release{false};
    store_->before(Op::release, [&] {
        believed_during_release = !lock.is_released();
        token_fired_during_release = lock.lost_token().stop_requested();
    });
    lock.release();
    EXPECT_EQ(store_->calls(Op::release), 1);
    EXPECT_FALSE(believed_during_release.load());
    EXPECT_TRUE(token_fired_during_release.load());
    EXPECT_EQ(lock.loss_cause(), LossCause::released);
}

TEST_F(FakeSafetyTest, ReleaseWhoseReplyIsLostStillEndsTheBelief) {
    auto lock = client_->acquire("a");
    store_->script(Op::release, Fault::reply_lost);
    EXPECT_THROW(lock.release(), pgelect::UnavailableError);
    EXPECT_TRUE(lock.is_released());
    EXPECT_TRUE(lock.lost_token().stop_requested());
    EXPECT_EQ(lock.loss_cause(), LossCause::database_unavailable);
    EXPECT_FALSE(store_->row("a").has_value());  // the statement did run
}

TEST_F(FakeSafetyTest, RenewalRepliesAreMatchedByNameAndToken) {
    auto first = client_->acquire("a");
    free_row_by_hand("a");
    auto second = client_->acquire("a");  // same client, same owner, new token
    ASSERT_GT(second.fencing_token(), first.fencing_token());
    clock_->advance(2s);  // one heartbeat: one statement renews both handles
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::renew) >= 1; }, 2s));
    EXPECT_TRUE(eventually([&] { return first.is_released(); }, 2s))
        << "the earlier Lock was kept alive by the later one's renewal";
    EXPECT_EQ(first.loss_cause(), LossCause::taken_over);
    EXPECT_FALSE(second.is_released());
}

TEST_F(FakeSafetyTest, ReplyArrivingAfterTheDeadlineRevivesNothing) {
    auto lock = client_->acquire("a");
    // The renewal sent at the first heartbeat is answered (successfully) only
    // after the renew deadline has passed.
    std::atomic<bool> once{false};
    store_->before(Op::renew, [&] {
        if (!once.exchange(true)) clock_->advance(10s);
    });
    clock_->advance(2s);
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::renew) >= 1; }, 2s));
    std::this_thread::sleep_for(kQuiet);
    EXPECT_TRUE(lock.is_released());
    for (int i = 0; i < 5; ++i) {
        step(500ms);
        ASSERT_TRUE(lock.is_released()) << "is_released() went from true back to false";
    }
    EXPECT_TRUE(eventually([&] { return lock.lost_token().stop_requested(); }, 2s));
    EXPECT_NE(lock.loss_cause(), LossCause::none);
}

TEST_F(FakeSafetyTest, ExpiredLockLeavesTheRenewalSetWhenItsHandleIsDropped) {
    {
        auto lock = client_->acquire("a");
        store_->fault_always(Op::renew, Fault::fail);
        clock_->advance(10s);  // past the deadline in one step: nothing noticed it yet
        EXPECT_TRUE(lock.is_released());
    }  // dropped at once
    store_->fault_always(Op::renew, std::nullopt);
    const int renewals = store_->calls(Op::renew);
    for (int i = 0; i < 10; ++i) step(2s);
    std::this_thread::sleep_for(kQuiet);
    const auto renewed = store_->renewals();
    for (std::size_t i = static_cast<std::size_t>(renewals); i < renewed.size(); ++i) {
        EXPECT_TRUE(renewed[i].empty()) << "a lock nobody holds is still renewed";
    }
}

TEST_F(FakeSafetyTest, RowLockedByAnotherTransactionIsUnknownNotLostForTheOthers) {
    auto a = client_->acquire("a");
    auto b = client_->acquire("b");
    store_->lock_row("a", true);
    for (int i = 0; i < 12; ++i) step(1s);  // past a's deadline, many of b's heartbeats
    EXPECT_TRUE(eventually([&] { return a.is_released(); }, 2s));
    EXPECT_EQ(a.loss_cause(), LossCause::deadline_passed);
    EXPECT_FALSE(b.is_released()) << "b lost its lease to a's locked row";
}

TEST_F(FakeSafetyTest, LossByDeadlineSendsTheConditionalReleaseBestEffort) {
    auto lock = client_->acquire("a");
    store_->fault_always(Op::renew, Fault::fail);
    for (int i = 0; i < 24; ++i) step(500ms);  // failed renewals are retried every 500 ms
    ASSERT_TRUE(eventually([&] { return lock.is_released(); }, 2s));
    EXPECT_EQ(lock.loss_cause(), LossCause::database_unavailable);  // the fake fails as unreachable
    EXPECT_TRUE(eventually([&] { return store_->calls(Op::release) == 1; }, 2s));
    EXPECT_TRUE(eventually([&] { return !store_->row("a").has_value(); }, 2s))
        << "followers would wait out the lease";
}

TEST_F(FakeSafetyTest, BlockedStopCallbackDelaysNoOtherLock) {
    auto a = client_->acquire("a");
    auto b = client_->acquire("b");
    std::latch release_a(1);
    std::atomic<bool> a_blocked{false};
    std::stop_callback blocker(a.lost_token(), [&] {
        a_blocked = true;
        release_a.wait();
    });
    store_->take_as("a", "intruder");
    clock_->advance(2s);
    ASSERT_TRUE(eventually([&] { return a_blocked.load(); }, 2s));
    store_->take_as("b", "intruder");
    clock_->advance(2s);  // the next heartbeat finds b taken too
    EXPECT_TRUE(eventually([&] { return b.lost_token().stop_requested(); }, 2s))
        << "b's stop token waited for a's callback";
    release_a.count_down();
}

TEST_F(FakeSafetyTest, AfterASuspendLongerThanTheLeaseTheLockIsNotHeld) {
    auto lock = client_->acquire("a");
    // The boot clock keeps counting while the machine sleeps: on waking, the
    // first question already gets the truth, before any thread has run.
    clock_->advance(20s);
    EXPECT_TRUE(lock.is_released());
    EXPECT_TRUE(eventually([&] { return lock.lost_token().stop_requested(); }, 2s));
}

TEST_F(FakeSafetyTest, LateAcquireReplyIsGivenBack) {
    // The acquisition's reply arrives after the renew deadline: not trusted.
    std::atomic<int> takes{0};
    store_->before(Op::try_take, [&] {
        if (takes++ == 0) clock_->advance(11s);
    });
    auto acquiring = std::async(std::launch::async, [&] { return client_->acquire("a"); });
    // The late lease is given back in the background; if the next attempt
    // still finds it held (and the release's NOTIFY came before the contender
    // listened), the contender takes it at its next retry tick.
    for (int tick = 0; tick < 20 && acquiring.wait_for(100ms) != std::future_status::ready; ++tick) {
        clock_->advance(options_.timing.retry_interval);
    }
    ASSERT_EQ(acquiring.wait_for(2s), std::future_status::ready);
    auto lock = acquiring.get();
    EXPECT_GE(takes.load(), 2);
    EXPECT_TRUE(eventually([&] { return store_->calls(Op::release) == 1; }, 2s));
    EXPECT_FALSE(lock.is_released());
    EXPECT_EQ(store_->row("a")->fencing_token, lock.fencing_token());
}

}  // namespace
