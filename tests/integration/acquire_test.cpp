// P3-P7, P12-P14: acquiring, waiting, cancelling, data, reads, owners.
#include <future>

#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

class Acquire : public LockTableTest {};

TEST_F(Acquire, P3_AcquireBlocksUntilTheHolderReleases) {
    // The handoff is bounded at half the lease: far below the lease a
    // takeover without the release would need, and above what two busy
    // processes beside the suite add to a NOTIFY and two statements.
    const LeaseTiming timing = loaded_timing();
    auto holder = make_client(timing);
    auto other = make_client(timing);
    auto held = holder->acquire("p3");
    std::atomic<bool> got{false};
    auto waiter = std::async(std::launch::async, [&] {
        auto lock = other->acquire("p3");
        got = true;
        return lock.fencing_token();
    });
    // While held, the waiter must not get it.
    EXPECT_EQ(waiter.wait_for(400ms), std::future_status::timeout);
    EXPECT_FALSE(got.load());
    const auto released_at = Clock::now();
    held.release();
    ASSERT_EQ(waiter.wait_for(10s), std::future_status::ready);
    const auto handoff = Clock::now() - released_at;
    EXPECT_GT(waiter.get(), held.fencing_token());
    // A release wakes the waiter through NOTIFY, well before its 50 ms poll... or the
    // poll itself: either way far below a lease.
    EXPECT_LT(handoff, timing.lease_duration / 2);
}

TEST_F(Acquire, P4_CancelledTokenReturnsNotAcquiredWithoutTakingTheLock) {
    std::stop_source stop;
    stop.request_stop();
    EXPECT_THROW(client_->acquire("p4", {}, stop.get_token()), NotAcquiredError);
    EXPECT_THROW(client_->get("p4"), NotFoundError);
}

TEST_F(Acquire, P4_CancellingAWaitingAcquireReturnsPromptly) {
    auto other = make_client();
    auto held = client_->acquire("p4w");
    std::stop_source stop;
    auto waiter = std::async(std::launch::async, [&] {
        try {
            other->acquire("p4w", {}, stop.get_token());
            return false;
        } catch (const NotAcquiredError& e) {
            return std::string(e.what()).find("cancelled") != std::string::npos;
        }
    });
    EXPECT_EQ(waiter.wait_for(200ms), std::future_status::timeout);
    stop.request_stop();
    ASSERT_EQ(waiter.wait_for(2s), std::future_status::ready);
    EXPECT_TRUE(waiter.get());
    EXPECT_FALSE(held.is_released());
}

TEST_F(Acquire, P5_FailIfLockedReturnsAtOnce) {
    auto other = make_client();
    auto held = client_->acquire("p5", AcquireOptions{.data = "mine"});
    const auto start = Clock::now();
    try {
        other->try_acquire("p5");
        FAIL() << "try_acquire took a held lock";
    } catch (const NotAcquiredError& e) {
        EXPECT_NE(std::string(e.what()).find("p5"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(table_), std::string::npos) << e.what();
    }
    EXPECT_LT(Clock::now() - start, 500ms);
    AcquireOptions o;
    o.fail_if_locked = true;
    EXPECT_THROW(other->acquire("p5", o), NotAcquiredError);
    EXPECT_EQ(client_->get("p5").owner, std::optional<std::string>(client_->owner()));
}

TEST_F(Acquire, P6_DataRoundTripsByteExact) {
    std::string binary("a\0b\0\xff\x01z", 7);
    auto lock = client_->acquire("p6", AcquireOptions{.data = binary});
    EXPECT_EQ(lock.data(), binary);
    EXPECT_EQ(client_->get("p6").data, std::optional<std::string>(binary));

    std::string big(1 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) % 256);
    lock.set_data(big);
    EXPECT_EQ(lock.data(), big);
    EXPECT_EQ(client_->get("p6").data, std::optional<std::string>(big));
    lock.release();
}

TEST_F(Acquire, P6_DataIsKeptOnReacquireUnlessReplaceIsAsked) {
    AcquireOptions first{.data = "original", .keep_on_release = true};
    client_->acquire("p6k", first).release();
    auto again = client_->acquire("p6k", AcquireOptions{.data = "ignored", .keep_on_release = true});
    EXPECT_EQ(again.data(), "original");
    EXPECT_EQ(client_->get("p6k").data, std::optional<std::string>("original"));
    again.release();
    auto replaced = client_->acquire(
        "p6k", AcquireOptions{.data = "new", .replace_data = true, .keep_on_release = true});
    EXPECT_EQ(replaced.data(), "new");
    EXPECT_EQ(client_->get("p6k").data, std::optional<std::string>("new"));
    replaced.release();
}

TEST_F(Acquire, P7_KeepOnReleaseKeepsAFreeRowOtherwiseItIsDeleted) {
    client_->acquire("p7keep", AcquireOptions{.data = "d", .keep_on_release = true}).release();
    auto info = client_->get("p7keep");
    EXPECT_FALSE(info.held());
    EXPECT_EQ(info.data, std::optional<std::string>("d"));

    client_->acquire("p7del", AcquireOptions{.data = "d"}).release();
    EXPECT_THROW(client_->get("p7del"), NotFoundError);
}

TEST_F(Acquire, P12_GetReadsWithoutAcquiring) {
    auto lock = client_->acquire("p12", AcquireOptions{.data = "payload"});
    auto other = make_client();
    auto info = other->get("p12");
    EXPECT_EQ(info.name, "p12");
    EXPECT_EQ(info.owner, std::optional<std::string>(client_->owner()));
    EXPECT_EQ(info.data, std::optional<std::string>("payload"));
    EXPECT_EQ(info.record_version_number, std::optional<std::int64_t>(lock.record_version_number()));
    EXPECT_EQ(info.fencing_token, std::optional<std::int64_t>(lock.fencing_token()));
    EXPECT_TRUE(info.held());
    ASSERT_TRUE(info.acquired_at.has_value());
    EXPECT_LT(std::chrono::abs(std::chrono::system_clock::now() - *info.acquired_at), 60s);
    EXPECT_FALSE(lock.is_released());  // reading did not disturb the holder
    try {
        other->get("missing");
        FAIL();
    } catch (const NotFoundError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::not_found);
        EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
    }
}

TEST_F(Acquire, P13_GetAllListsEveryRow) {
    auto a = client_->acquire("p13-a", AcquireOptions{.data = "A"});
    auto other = make_client(fast_timing(), "other-owner");
    auto b = other->acquire("p13-b", AcquireOptions{.data = "B"});
    client_->acquire("p13-c", AcquireOptions{.data = "C", .keep_on_release = true}).release();
    auto all = client_->get_all();
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].name, "p13-a");
    EXPECT_EQ(all[0].owner, std::optional<std::string>(client_->owner()));
    EXPECT_EQ(all[0].data, std::optional<std::string>("A"));
    EXPECT_EQ(all[1].name, "p13-b");
    EXPECT_EQ(all[1].owner, std::optional<std::string>("other-owner"));
    EXPECT_EQ(all[1].data, std::optional<std::string>("B"));
    EXPECT_EQ(all[2].name, "p13-c");
    EXPECT_FALSE(all[2].held());
}

TEST_F(Acquire, P14_OwnerIsUniquePerClientAndSettable) {
    auto c2 = make_client();
    EXPECT_NE(client_->owner(), c2->owner());
    EXPECT_FALSE(client_->owner().empty());
    auto named = make_client(fast_timing(), "scheduler@host-1");
    EXPECT_EQ(named->owner(), "scheduler@host-1");
    auto lock = named->acquire("p14");
    EXPECT_EQ(lock.owner(), "scheduler@host-1");
    EXPECT_EQ(sql("SELECT owner FROM " + table_ + " WHERE name = 'p14'")[0][0].as<std::string>(),
              "scheduler@host-1");
}

TEST_F(Acquire, FencingTokenIncreasesWithEveryAcquisition) {
    auto other = make_client();
    std::int64_t last = 0;
    for (int i = 0; i < 10; ++i) {
        auto& c = (i % 2) ? *client_ : *other;
        auto lock = c.acquire("fence", AcquireOptions{.keep_on_release = (i % 3 == 0)});
        EXPECT_GT(lock.fencing_token(), last);
        last = lock.fencing_token();
        lock.release();
    }
}

TEST_F(Acquire, LockNamesAreValidatedBeforeAnySql) {
    for (const std::string bad : {std::string(), std::string(256, 'x'), std::string("a\0b", 3),
                                  std::string("\xff\xfe")}) {
        EXPECT_THROW(client_->acquire(bad), InvalidArgumentError);
        EXPECT_THROW(client_->get(bad), InvalidArgumentError);
    }
    EXPECT_NO_THROW(client_->acquire(std::string(255, 'x')).release());
    EXPECT_EQ(client_->get_all().size(), 0u);
}

}  // namespace
}  // namespace pgelect::test

namespace pgelect::test {
namespace {

class AcquireExtras : public LockTableTest {};

TEST_F(AcquireExtras, PerLockOwnersAreRenewedInOneClient) {
    auto a = client_->acquire("owned-a", AcquireOptions{.owner = "alice"});
    auto b = client_->acquire("owned-b", AcquireOptions{.owner = "bob"});
    EXPECT_EQ(a.owner(), "alice");
    EXPECT_EQ(client_->get("owned-b").owner, std::optional<std::string>("bob"));
    const auto va = a.record_version_number(), vb = b.record_version_number();
    ASSERT_TRUE(eventually([&] {
        return a.record_version_number() != va && b.record_version_number() != vb;
    }, 3s));
    std::this_thread::sleep_for(1200ms);  // past a lease: both renewed, neither lost
    EXPECT_FALSE(a.is_released());
    EXPECT_FALSE(b.is_released());
    EXPECT_THROW(client_->acquire("x", AcquireOptions{.owner = std::string(256, 'o')}),
                 InvalidArgumentError);
}

TEST_F(AcquireExtras, ObserverSeesTheHolderWhileWaiting) {
    auto other = make_client(fast_timing(), "the-holder");
    auto held = other->acquire("watched");
    std::vector<LockObservation> seen;
    std::stop_source stop;
    AcquireOptions o;
    o.observer = [&](const LockObservation& obs) {
        seen.push_back(obs);
        if (seen.size() >= 3) stop.request_stop();
    };
    EXPECT_THROW(client_->acquire("watched", o, stop.get_token()), NotAcquiredError);
    ASSERT_GE(seen.size(), 3u);
    EXPECT_TRUE(seen[0].held);
    EXPECT_EQ(seen[0].owner, "the-holder");
    EXPECT_EQ(seen[0].fencing_token, std::optional<std::int64_t>(held.fencing_token()));
}

TEST_F(AcquireExtras, LossCausesAreReported) {
    auto released = client_->acquire("c1");
    EXPECT_EQ(released.loss_cause(), LossCause::none);
    released.release();
    EXPECT_EQ(released.loss_cause(), LossCause::released);

    auto taken = client_->acquire("c2");
    sql("UPDATE " + table_ + " SET fencing_token = fencing_token + 1 WHERE name = 'c2'");
    ASSERT_TRUE(eventually([&] { return taken.is_released(); }, 3s));
    EXPECT_EQ(taken.loss_cause(), LossCause::taken_over);
    EXPECT_NE(taken.loss_reason().find("taken over"), std::string::npos);

    LeaseTiming off = fast_timing();
    off.heartbeat_interval = 0ms;
    auto c = make_client(off);
    auto expired = c->acquire("c3");
    ASSERT_TRUE(eventually([&] { return expired.lost_token().stop_requested(); }, 3s));
    EXPECT_EQ(expired.loss_cause(), LossCause::deadline_passed);
}

TEST_F(AcquireExtras, AttemptAndRenewalSignalsReportWhatHappened) {
    std::mutex mu;
    std::vector<std::pair<std::string, AttemptResult>> attempts;
    std::vector<RenewalReport> renewals;
    // Disconnected before the vectors above go, also when an assertion fails.
    boost::signals2::scoped_connection on_attempt =
        client_->acquire_attempted.connect([&](const std::string& n, AttemptResult r) {
            std::lock_guard lk(mu);
            attempts.emplace_back(n, r);
        });
    boost::signals2::scoped_connection on_renewal =
        client_->renewal_finished.connect([&](const RenewalReport& r) {
            std::lock_guard lk(mu);
            renewals.push_back(r);
        });
    auto lock = client_->acquire("signalled");
    std::size_t acquisitions = 0;
    {
        // One attempt, unless the answer came after the renew deadline (a very
        // busy machine): then the lease is given back and tried again.
        std::lock_guard lk(mu);
        acquisitions = attempts.size();
        ASSERT_GE(acquisitions, 1u);
        EXPECT_EQ(attempts.back(), std::make_pair(std::string("signalled"), AttemptResult::acquired));
        for (const auto& a : attempts) EXPECT_EQ(a.first, "signalled");
    }
    auto other = make_client();
    auto held = other->acquire("taken-elsewhere");
    EXPECT_THROW(client_->try_acquire("taken-elsewhere"), NotAcquiredError);
    ASSERT_TRUE(eventually([&] {
        std::lock_guard lk(mu);
        return !renewals.empty();
    }, 3s));
    std::lock_guard lk(mu);
    ASSERT_EQ(attempts.size(), acquisitions + 1);
    EXPECT_EQ(attempts.back(), std::make_pair(std::string("taken-elsewhere"), AttemptResult::busy));
    EXPECT_TRUE(renewals[0].ok);
    EXPECT_EQ(renewals[0].names, std::vector<std::string>{"signalled"});
    EXPECT_EQ(renewals[0].still_held, std::vector<std::string>{"signalled"});
    EXPECT_GT(renewals[0].elapsed.count(), 0);
}

}  // namespace
}  // namespace pgelect::test
