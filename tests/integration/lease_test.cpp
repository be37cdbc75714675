// P8-P11, P15-P18: heartbeats, release, run-under-lock, expiry, errors, wrap-around.
#include <future>

#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

class Lease : public LockTableTest {};

LeaseTiming without_heartbeats() {
    LeaseTiming t = fast_timing();
    t.heartbeat_interval = 0ms;
    return t;
}

// For tests whose lock must stay valid across a few statements (a 700 ms renew
// deadline ran out between two of them on a loaded machine).
LeaseTiming held_without_heartbeats() {
    LeaseTiming t = loaded_timing();
    t.heartbeat_interval = 0ms;
    return t;
}

TEST_F(Lease, P8_HeartbeatsKeepALockPastThreeLeases) {
    auto holder = client_->acquire("p8");
    auto waiter = make_client();
    std::stop_source stop;
    auto attempt = std::async(std::launch::async, [&] {
        try {
            waiter->acquire("p8", {}, stop.get_token());
            return true;
        } catch (const NotAcquiredError&) {
            return false;
        }
    });
    // 3 x lease (1 s): a waiter that could take it would have by now.
    EXPECT_EQ(attempt.wait_for(3s), std::future_status::timeout);
    stop.request_stop();
    EXPECT_FALSE(attempt.get());
    EXPECT_FALSE(holder.is_released());
    EXPECT_NO_THROW(holder.release());
}

TEST_F(Lease, P8_WithoutHeartbeatsAWaiterTakesOverAfterTheLease) {
    auto holder_client = make_client(without_heartbeats());
    auto holder = holder_client->acquire("p8off");
    const auto acquired = Clock::now();
    auto waiter = make_client();
    auto lock = waiter->acquire("p8off");
    const auto waited = Clock::now() - acquired;
    EXPECT_GE(waited, 1000ms);  // never before one lease
    EXPECT_LT(waited, 3000ms);
    EXPECT_GT(lock.fencing_token(), holder.fencing_token());
    // The old holder stopped trusting its lease at its renew deadline, before the takeover.
    EXPECT_TRUE(holder.is_released());
    EXPECT_TRUE(holder.lost_token().stop_requested());
}

TEST_F(Lease, P9_ManualHeartbeatChangesTheVersionAndFailsOnceReleased) {
    auto c = make_client(held_without_heartbeats());
    auto lock = c->acquire("p9");
    const auto before = lock.record_version_number();
    c->heartbeat(lock);
    EXPECT_NE(lock.record_version_number(), before);
    EXPECT_EQ(c->get("p9").record_version_number,
              std::optional<std::int64_t>(lock.record_version_number()));
    // A manual heartbeat extends the local validity too.
    const auto until = lock.valid_until();
    c->heartbeat(lock);
    EXPECT_GT(lock.valid_until(), until);
    lock.release();
    EXPECT_THROW(c->heartbeat(lock), AlreadyReleasedError);
}

TEST_F(Lease, P10_ReleasingALockSomeoneElseFreedReportsAlreadyReleased) {
    auto c = make_client(held_without_heartbeats());
    auto lock = c->acquire("p10");
    sql("UPDATE " + table_ + " SET record_version_number = NULL WHERE name = 'p10'");
    try {
        lock.release();
        FAIL() << "release of a freed lock succeeded";
    } catch (const AlreadyReleasedError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::already_released);
        EXPECT_NE(std::string(e.what()).find("p10"), std::string::npos);
    }
    EXPECT_TRUE(lock.is_released());
    EXPECT_THROW(lock.release(), AlreadyReleasedError);
}

TEST_F(Lease, P10_ReleaseOfATakenOverLockDoesNotTouchTheNewHolder) {
    auto c = make_client(without_heartbeats());
    auto lock = c->acquire("p10b");
    auto thief = make_client();
    auto stolen = thief->acquire("p10b");  // after the lease
    EXPECT_THROW(lock.release(), AlreadyReleasedError);
    EXPECT_FALSE(stolen.is_released());
    EXPECT_EQ(thief->get("p10b").fencing_token, std::optional<std::int64_t>(stolen.fencing_token()));
}

TEST_F(Lease, P11_WithLockStopTokenFiresWhenTheLockIsLost) {
    bool fired = false;
    std::int64_t token = 0;
    client_->with_lock("p11", [&](std::stop_token lost) {
        token = client_->get("p11").fencing_token.value_or(0);
        sql("UPDATE " + table_ + " SET record_version_number = NULL WHERE name = 'p11'");
        fired = eventually([&] { return lost.stop_requested(); }, 5s);
    });
    EXPECT_TRUE(fired);
    EXPECT_GT(token, 0);
}

TEST_F(Lease, P11_WithLockReleasesWhenTheFunctionReturnsOrThrows) {
    int result = client_->with_lock("p11r", [&](std::stop_token) {
        EXPECT_TRUE(client_->get("p11r").held());
        return 42;
    });
    EXPECT_EQ(result, 42);
    EXPECT_THROW(client_->get("p11r"), NotFoundError);
    EXPECT_THROW(client_->with_lock("p11r", [](std::stop_token) { throw std::runtime_error("x"); }),
                 std::runtime_error);
    EXPECT_THROW(client_->get("p11r"), NotFoundError);
}

TEST_F(Lease, P11_FailIfLockedRunOnAHeldLockNeverCallsTheFunction) {
    auto other = make_client();
    auto held = other->acquire("p11f");
    bool called = false;
    AcquireOptions o;
    o.fail_if_locked = true;
    EXPECT_THROW(client_->with_lock("p11f", [&](std::stop_token) { called = true; }, o),
                 NotAcquiredError);
    EXPECT_FALSE(called);
}

TEST(PglockParity, P15_HeartbeatOverHalfTheLeaseIsRefused) {
    LockClientOptions o;
    o.timing.lease_duration = 10s;
    o.timing.heartbeat_interval = 6s;
    o.timing.renew_deadline = 8s;
    try {
        LockClient c(dsn(), o);
        FAIL() << "accepted heartbeat > lease/2";
    } catch (const InvalidArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find("heartbeat_interval (6000ms) must be at most half of "
                                             "lease_duration (10000ms)"),
                  std::string::npos)
            << e.what();
    }
}

TEST_F(Lease, P16_AbandonedLockIsTakenAfterAboutOneLeaseNeverSooner) {
    // A 2 s lease, so that "about one lease" (at most a second late, for the
    // statements and wake-ups a busy machine slows down) stays clear of two.
    LeaseTiming t = without_heartbeats();
    t.lease_duration = 2000ms;
    t.renew_deadline = 1500ms;
    auto holder_client = make_client(t);
    auto holder = holder_client->acquire("p16");
    auto waiter = make_client(t);
    Clock::time_point first_seen{};  // the waiter's first read of the held row
    AcquireOptions o;
    o.observer = [&](const LockObservation& seen) {
        if (seen.held && first_seen == Clock::time_point{}) first_seen = Clock::now();
    };
    const auto start = Clock::now();  // after the holder's acquisition
    auto lock = waiter->acquire("p16", o);
    const auto taken = Clock::now();
    // Never sooner: the waiter's own steady clock, first sight + lease.
    EXPECT_GE(taken - start, t.lease_duration - 50ms);
    // About one lease after the waiter first saw the row, not two.
    ASSERT_NE(first_seen, Clock::time_point{});
    EXPECT_LE(taken - first_seen, t.lease_duration + t.retry_interval + 1s);
    // Only the new holder's token is in the row.
    EXPECT_EQ(waiter->get("p16").fencing_token, std::optional<std::int64_t>(lock.fencing_token()));
}

TEST(PglockParity, P17_UnreachableServerIsUnavailableAndHidesThePassword) {
    LockClientOptions o;
    o.connect_timeout = 2s;
    LockClient c("host=127.0.0.1 port=1 user=u password=sup3rsecret dbname=d", o);
    try {
        c.acquire("p17");
        FAIL();
    } catch (const UnavailableError& e) {
        const std::string msg = e.what();
        EXPECT_EQ(e.kind(), ErrorKind::unavailable);
        EXPECT_EQ(msg.find("sup3rsecret"), std::string::npos) << msg;
        EXPECT_NE(msg.find("p17"), std::string::npos) << msg;
        EXPECT_NE(msg.find("cannot connect"), std::string::npos) << msg;
    }
    EXPECT_THROW(c.get("p17"), UnavailableError);
}

TEST_F(Lease, P17_SerializationFailuresAreRetriedInside) {
    // A trigger that fails the first three writes with SQLSTATE 40001.
    sql("CREATE SEQUENCE " + table_ + "_fail; CREATE FUNCTION " + table_ +
        "_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF nextval('" + table_ +
        "_fail') <= 3 THEN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END IF; "
        "RETURN NEW; END $$; CREATE TRIGGER f BEFORE INSERT OR UPDATE ON " + table_ +
        " FOR EACH ROW EXECUTE FUNCTION " + table_ + "_f()");
    // Without heartbeats: a renewal is an UPDATE too, and would draw from the
    // sequence before the check below on a slow machine.
    LeaseTiming manual = loaded_timing();
    manual.heartbeat_interval = 0ms;
    auto lock = client_->acquire("p17s", AcquireOptions{.timing = manual});
    EXPECT_FALSE(lock.is_released());
    EXPECT_EQ(sql("SELECT last_value FROM " + table_ + "_fail")[0][0].as<int>(), 4);
    lock.release();

    // More failures than the client retries reach the caller as a serialization error.
    sql("ALTER SEQUENCE " + table_ + "_fail RESTART WITH -1000 MINVALUE -1000");
    auto o = options_for(table_);
    o.serialization_retries = 2;
    LockClient few(dsn(), o);
    EXPECT_THROW(few.acquire("p17t"), SerializationError);
    sql("DROP TRIGGER f ON " + table_ + "; DROP FUNCTION " + table_ + "_f(); DROP SEQUENCE " +
        table_ + "_fail");
}

TEST_F(Lease, P17_MissingRowIsNotFoundAndMissingTableSaysHowToCreateIt) {
    EXPECT_THROW(client_->get("nope"), NotFoundError);
    LockClient c(dsn(), options_for(unique_table("missing")));
    try {
        c.acquire("x");
        FAIL();
    } catch (const FailedPreconditionError& e) {
        EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("try_create_table"), std::string::npos) << e.what();
    }
}

TEST_F(Lease, P18_RecordVersionSequenceWrapsAround) {
    sql("SELECT setval('" + table_ + "_rvn', 9223372036854775806)");
    std::set<std::int64_t> tokens;
    for (int i = 0; i < 10; ++i) {
        auto lock = client_->acquire("p18", AcquireOptions{.keep_on_release = (i % 2 == 0)});
        client_->heartbeat(lock);
        tokens.insert(lock.fencing_token());
        lock.release();
    }
    EXPECT_EQ(tokens.size(), 10u);
    EXPECT_LT(sql("SELECT last_value FROM " + table_ + "_rvn")[0][0].as<std::int64_t>(), 100);
}

}  // namespace
}  // namespace pgelect::test
