// The lock protocol on a fake clock and an in-memory store: renewals,
// the renew deadline and lost replies, decided by the instants the test picks.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fake_clock.hpp"
#include "fake_client.hpp"
#include "fake_store.hpp"
#include "lock/client_factory.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock_client.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::LockClient;
using pgelect::LossCause;
using pgelect_test::eventually;
using pgelect_test::FakeClock;
using pgelect_test::FakeStore;
using Op = FakeStore::Op;
using Fault = FakeStore::Fault;

// Time for the client's threads to react to something that must not happen.
constexpr auto kQuiet = 30ms;

class FakeLockTest : public pgelect_test::FakeClientTest {
protected:
    // Advances the fake clock in steps of `step` up to `total`, letting the
    // client's threads catch up after each one.  `threads`: how many of the client's threads must see each new instant
    // (2 while it holds a lock: the renewal and deadline threads).
    void advance(std::chrono::nanoseconds total, std::chrono::nanoseconds step,
                 std::size_t threads = 2) {
        for (auto done = 0ns; done < total; done += step) {
            clock_->step(std::min(step, total - done), threads);
        }
    }

    std::int64_t stored_rvn(const std::string& name) const {
        auto row = store_->row(name);
        return row && row->rvn ? *row->rvn : -1;
    }

};

TEST_F(FakeLockTest, HeldLockIsRenewedOnEveryHeartbeatOfTheFakeClock) {
    auto lock = client_->acquire("a");
    EXPECT_EQ(lock.owner(), "me");
    EXPECT_EQ(store_->row("a")->owner, "me");
    EXPECT_EQ(store_->row("a")->fencing_token, lock.fencing_token());
    // The public valid_until() is steady time: renew_deadline from now (the fake
    // clock stands still), converted when it is read.
    const auto before = std::chrono::steady_clock::now();
    const auto until = lock.valid_until();
    const auto after = std::chrono::steady_clock::now();
    EXPECT_GE(until - before, 10s);
    EXPECT_LE(until - after, 10s);

    for (int beat = 1; beat <= 5; ++beat) {
        // Just before the heartbeat: nothing happens, however long we wait.
        clock_->advance(2s - 1ms);
        std::this_thread::sleep_for(kQuiet);
        EXPECT_EQ(store_->calls(Op::renew), beat - 1) << "beat " << beat;
        clock_->advance(1ms);
        ASSERT_TRUE(eventually([&] { return store_->calls(Op::renew) == beat; }, 2s)) << "beat " << beat;
        ASSERT_TRUE(eventually([&] { return lock.record_version_number() == stored_rvn("a"); }, 2s));
    }
    EXPECT_FALSE(lock.is_released());
    EXPECT_EQ(lock.loss_cause(), LossCause::none);
    // Twenty seconds of fake time have passed: the renewals kept the lease.
    const auto renewals = store_->renewals();
    ASSERT_EQ(renewals.size(), 5u);
    for (const auto& items : renewals) {
        ASSERT_EQ(items.size(), 1u);
        EXPECT_EQ(items[0].name, "a");
        EXPECT_EQ(items[0].fencing_token, lock.fencing_token());
    }
    lock.release();
    EXPECT_FALSE(store_->row("a").has_value());
}

TEST_F(FakeLockTest, FailingRenewalsLoseTheLockExactlyAtTheRenewDeadline) {
    auto lock = client_->acquire("a");
    store_->fault_always(Op::renew, Fault::fail);
    // Up to one nanosecond before the deadline (acquisition + 10 s) the lock is
    // held, while renewals keep failing (retried every heartbeat / 4 = 500 ms).
    advance(10s - 1ns, 500ms);
    std::this_thread::sleep_for(kQuiet);
    EXPECT_FALSE(lock.lost_token().stop_requested());
    EXPECT_FALSE(lock.is_released());
    EXPECT_EQ(lock.loss_cause(), LossCause::none);
    EXPECT_GE(store_->calls(Op::renew), 5);  // ~16 when every step is seen

    clock_->advance(1ns);
    EXPECT_TRUE(lock.is_released());  // at once for every reader: the belief is the clock's
    ASSERT_TRUE(eventually([&] { return lock.lost_token().stop_requested(); }, 2s));
    EXPECT_EQ(lock.loss_cause(), LossCause::database_unavailable);
    EXPECT_TRUE(pgelect_test::contains(lock.loss_reason(), "renew deadline passed"));
    // The row itself is untouched (the store never answered); lost locks are not renewed.
    const int calls = store_->calls(Op::renew);
    advance(5s, 500ms);
    EXPECT_LE(store_->calls(Op::renew), calls + 1);
}

TEST_F(FakeLockTest, HangingRenewalIsLostAtTheDeadlineOfTheFakeClock) {
    auto lock = client_->acquire("a");
    std::promise<void> unblock;
    auto unblocked = unblock.get_future().share();
    store_->before(Op::renew, [unblocked] { unblocked.wait(); });
    clock_->advance(2s);  // the renewal starts and hangs
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::renew) == 1; }, 2s));
    clock_->advance(8s - 1ns);
    std::this_thread::sleep_for(kQuiet);
    EXPECT_FALSE(lock.lost_token().stop_requested());
    clock_->advance(1ns);
    ASSERT_TRUE(eventually([&] { return lock.lost_token().stop_requested(); }, 2s));
    EXPECT_EQ(lock.loss_cause(), LossCause::deadline_passed);
    unblock.set_value();
    // The late success does not bring it back.
    std::this_thread::sleep_for(kQuiet);
    EXPECT_TRUE(lock.is_released());
}

TEST_F(FakeLockTest, LostRenewalReplyIsRetriedAndTheLockKept) {
    auto lock = client_->acquire("a");
    const auto acquired_rvn = lock.record_version_number();
    store_->script(Op::renew, Fault::reply_lost);
    clock_->advance(2s);
    // The statement took effect in the store, but the client never heard of it.
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::renew) == 1; }, 2s));
    ASSERT_TRUE(eventually([&] { return stored_rvn("a") != acquired_rvn; }, 2s));
    std::this_thread::sleep_for(kQuiet);
    EXPECT_EQ(lock.record_version_number(), acquired_rvn);
    // Retried after heartbeat / 4; the retry matches the fencing token, not the version.
    clock_->advance(500ms);
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::renew) == 2; }, 2s));
    ASSERT_TRUE(eventually([&] { return lock.record_version_number() == stored_rvn("a"); }, 2s));
    EXPECT_FALSE(lock.is_released());
    // The lease now runs from the retry: held well past the first deadline.
    advance(12s, 500ms);
    EXPECT_FALSE(lock.is_released());
    EXPECT_EQ(lock.loss_cause(), LossCause::none);
}

TEST_F(FakeLockTest, RenewalFindingTheRowTakenOverLosesTheLock) {
    auto lock = client_->acquire("a");
    store_->take_as("a", "other");
    clock_->advance(2s);
    ASSERT_TRUE(eventually([&] { return lock.lost_token().stop_requested(); }, 2s));
    EXPECT_EQ(lock.loss_cause(), LossCause::taken_over);
    EXPECT_EQ(store_->row("a")->owner, "other");
}

TEST_F(FakeLockTest, ContenderTakesOverOnlyAfterAFullLeaseOfUnchangedVersion) {
    store_->take_as("a", "crashed");
    auto waiting = std::async(std::launch::async, [&] { return client_->acquire("a"); });
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::poll) >= 1; }, 2s));
    // The holder never renews: 15 s of the contender's clock after it first saw the version.
    advance(15s - 500ms, 500ms, 1);
    std::this_thread::sleep_for(kQuiet);
    EXPECT_EQ(waiting.wait_for(0s), std::future_status::timeout);
    EXPECT_EQ(store_->row("a")->owner, "crashed");
    clock_->advance(500ms);
    ASSERT_EQ(waiting.wait_for(2s), std::future_status::ready);
    auto lock = waiting.get();
    EXPECT_EQ(store_->row("a")->owner, "me");
    EXPECT_EQ(store_->row("a")->fencing_token, lock.fencing_token());
}

TEST_F(FakeLockTest, ContendersOfOneClientReadTheirRowsInOneStatementPerTick) {
    // Eight contenders start at different instants (a fifth of a retry
    // interval apart); after one tick they read all eight rows together.
    constexpr int kContenders = 8;
    std::vector<std::future<pgelect::Lock>> waiting;
    for (int i = 0; i < kContenders; ++i) {
        const std::string name = "g" + std::to_string(i);
        store_->take_as(name, "other");
        waiting.push_back(std::async(std::launch::async, [this, name] { return client_->acquire(name); }));
        ASSERT_TRUE(eventually([&] { return store_->calls(Op::poll) == i + 1; }, 2s));
        clock_->step(100ms, 1);
    }
    advance(2s, 100ms, 1);
    const auto before = store_->polls().size();
    for (int tick = 0; tick < 10; ++tick) {
        for (const auto& name : {"g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"}) store_->renew_as_other(name);
        advance(500ms, 100ms, 1);
    }
    ASSERT_TRUE(eventually([&] { return store_->polls().size() >= before + 10; }, 2s));
    const auto polls = store_->polls();
    // One read per retry interval (500 ms), each of every row.
    EXPECT_LE(polls.size() - before, 11u);
    for (auto i = before; i < polls.size(); ++i) {
        EXPECT_EQ(polls[i].size(), static_cast<std::size_t>(kContenders)) << "read " << i;
    }
    // Still contenders: a release wakes the right one at once.
    store_->release_as_other("g3");
    ASSERT_EQ(waiting[3].wait_for(2s), std::future_status::ready);
    EXPECT_EQ(waiting[3].get().owner(), "me");
    for (int i = 0; i < kContenders; ++i) {
        if (i != 3) EXPECT_EQ(waiting[i].wait_for(0s), std::future_status::timeout);
    }
    for (const auto& name : {"g0", "g1", "g2", "g4", "g5", "g6", "g7"}) store_->release_as_other(name);
    for (auto& w : waiting) {
        if (w.valid()) ASSERT_EQ(w.wait_for(2s), std::future_status::ready);
    }
}

TEST_F(FakeLockTest, NothingIsTakenDuringAFailoverQuarantine) {
    // The server reports 5 s of quarantine (a promotion it saw just now); the
    // contender asks again every retry_interval (500 ms), never earlier.
    store_->set_quarantine(5000ms);
    EXPECT_THROW(
        {
            try {
                client_->try_acquire("a");
            } catch (const pgelect::NotAcquiredError& e) {
                EXPECT_NE(std::string(e.what()).find("failover quarantine for another 5000 ms"),
                          std::string::npos)
                    << e.what();
                throw;
            }
        },
        pgelect::NotAcquiredError);
    const int before = store_->calls(Op::try_take);
    auto waiting = std::async(std::launch::async, [&] { return client_->acquire("a"); });
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::try_take) == before + 1; }, 2s));
    std::this_thread::sleep_for(kQuiet);
    EXPECT_EQ(store_->calls(Op::try_take), before + 1);  // no attempt before the retry interval
    advance(4500ms, 500ms, 1);
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::try_take) >= before + 10; }, 2s));
    EXPECT_EQ(waiting.wait_for(kQuiet), std::future_status::timeout);
    EXPECT_FALSE(store_->row("a").has_value());
    // The quarantine ends: the next attempt takes the lock.
    store_->set_quarantine(0ms);
    clock_->advance(500ms);
    ASSERT_EQ(waiting.wait_for(2s), std::future_status::ready);
    EXPECT_EQ(waiting.get().owner(), "me");
}

TEST_F(FakeLockTest, RenewingHolderIsNeverTakenOver) {
    store_->take_as("a", "alive");
    auto waiting = std::async(std::launch::async, [&] { return client_->acquire("a"); });
    ASSERT_TRUE(eventually([&] { return store_->calls(Op::poll) >= 1; }, 2s));
    for (int i = 0; i < 10; ++i) {
        advance(2s, 500ms, 1);
        store_->renew_as_other("a");
    }
    std::this_thread::sleep_for(kQuiet);
    EXPECT_EQ(waiting.wait_for(0s), std::future_status::timeout);
    EXPECT_EQ(store_->row("a")->owner, "alive");
    // A release notification wakes the contender without any time passing.
    store_->release_as_other("a");
    ASSERT_EQ(waiting.wait_for(2s), std::future_status::ready);
    EXPECT_EQ(waiting.get().owner(), "me");
}

TEST_F(FakeLockTest, LostAcquireReplyIsReportedAndTheRowLeftToExpire) {
    store_->script(Op::try_take, Fault::reply_lost);
    EXPECT_THROW(client_->acquire("a"), pgelect::UnavailableError);
    // The row was taken in the store; the client does not know it holds it.
    EXPECT_EQ(store_->row("a")->owner, "me");
    EXPECT_EQ(store_->calls(Op::renew), 0);
}

TEST_F(FakeLockTest, FailedReleaseStillMarksTheLockLost) {
    auto lock = client_->acquire("a");
    store_->script(Op::release, Fault::fail);
    EXPECT_THROW(lock.release(), pgelect::UnavailableError);
    EXPECT_TRUE(lock.is_released());
    EXPECT_EQ(lock.loss_cause(), LossCause::database_unavailable);
    EXPECT_TRUE(store_->row("a").has_value());  // left to expire
}

}  // namespace
