// validate_timing / validate_options, LockClient construction, errors.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "lock/names.hpp"
#include "pgelect/pgelect.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using pgelect::InvalidArgumentError;
using pgelect::LeaseTiming;
using pgelect::LockClientOptions;
using pgelect::validate_options;
using pgelect::validate_timing;
using pgelect_test::contains;
using pgelect_test::lacks;
using pgelect_test::message_of;

LeaseTiming timing(std::chrono::milliseconds lease, std::chrono::milliseconds deadline,
                   std::chrono::milliseconds heartbeat, std::chrono::milliseconds retry = 500ms) {
    LeaseTiming t;
    t.lease_duration = lease;
    t.renew_deadline = deadline;
    t.heartbeat_interval = heartbeat;
    t.retry_interval = retry;
    return t;
}

TEST(Timing, DefaultsAreValidAndDocumented) {
    LeaseTiming t;
    EXPECT_EQ(t.lease_duration, 15s);
    EXPECT_EQ(t.renew_deadline, 10s);
    EXPECT_EQ(t.heartbeat_interval, 2s);
    EXPECT_EQ(t.retry_interval, 500ms);
    EXPECT_NO_THROW(validate_timing(t));
}

TEST(Timing, BoundaryValuesAreValid) {
    // heartbeat exactly half the lease
    EXPECT_NO_THROW(validate_timing(timing(1000ms, 600ms, 500ms)));
    // renew deadline just above heartbeat and just below the lease
    EXPECT_NO_THROW(validate_timing(timing(1000ms, 501ms, 500ms)));
    EXPECT_NO_THROW(validate_timing(timing(1000ms, 999ms, 500ms)));
    // small values for fast tests
    EXPECT_NO_THROW(validate_timing(timing(100ms, 60ms, 20ms, 10ms)));
    EXPECT_NO_THROW(validate_timing(timing(3ms, 2ms, 1ms, 1ms)));
}

TEST(Timing, HeartbeatZeroTurnsHeartbeatsOff) {
    EXPECT_NO_THROW(validate_timing(timing(15s, 10s, 0ms)));
    EXPECT_NO_THROW(validate_timing(timing(2ms, 1ms, 0ms)));
}

TEST(Timing, HeartbeatAboveHalfLeaseIsRefused) {
    auto msg = message_of<InvalidArgumentError>([] { validate_timing(timing(1000ms, 900ms, 501ms)); });
    EXPECT_TRUE(contains(msg, "heartbeat_interval"));
    EXPECT_TRUE(contains(msg, "501ms"));
    EXPECT_TRUE(contains(msg, "1000ms"));
    EXPECT_TRUE(contains(msg, "lease_duration"));
}

TEST(Timing, NegativeHeartbeatIsRefused) {
    auto msg = message_of<InvalidArgumentError>([] { validate_timing(timing(15s, 10s, -1ms)); });
    EXPECT_TRUE(contains(msg, "heartbeat_interval"));
}

TEST(Timing, RenewDeadlineMustExceedHeartbeat) {
    auto msg = message_of<InvalidArgumentError>([] { validate_timing(timing(15s, 2s, 2s)); });
    EXPECT_TRUE(contains(msg, "renew_deadline"));
    EXPECT_TRUE(contains(msg, "heartbeat_interval"));
    EXPECT_THROW(validate_timing(timing(15s, 1s, 2s)), InvalidArgumentError);
    // With heartbeats off the deadline must still be positive.
    EXPECT_THROW(validate_timing(timing(15s, 0ms, 0ms)), InvalidArgumentError);
    EXPECT_THROW(validate_timing(timing(15s, -5ms, 0ms)), InvalidArgumentError);
}

TEST(Timing, RenewDeadlineMustBeBelowLease) {
    auto msg = message_of<InvalidArgumentError>([] { validate_timing(timing(15s, 15s, 2s)); });
    EXPECT_TRUE(contains(msg, "renew_deadline"));
    EXPECT_TRUE(contains(msg, "lease_duration"));
    EXPECT_THROW(validate_timing(timing(15s, 16s, 2s)), InvalidArgumentError);
}

TEST(Timing, LeaseMustBePositive) {
    auto msg = message_of<InvalidArgumentError>([] { validate_timing(timing(0ms, 0ms, 0ms)); });
    EXPECT_TRUE(contains(msg, "lease_duration"));
    msg = message_of<InvalidArgumentError>([] { validate_timing(timing(-15s, -20s, 0ms)); });
    EXPECT_TRUE(contains(msg, "lease_duration"));
}

TEST(Timing, RetryIntervalMustBePositive) {
    auto msg = message_of<InvalidArgumentError>([] { validate_timing(timing(15s, 10s, 2s, 0ms)); });
    EXPECT_TRUE(contains(msg, "retry_interval"));
    EXPECT_THROW(validate_timing(timing(15s, 10s, 2s, -1ms)), InvalidArgumentError);
}

TEST(Timing, ErrorKindIsInvalidArgument) {
    try {
        validate_timing(timing(0ms, 0ms, 0ms));
        FAIL() << "did not throw";
    } catch (const pgelect::Error& e) {
        EXPECT_EQ(e.kind(), pgelect::ErrorKind::invalid_argument);
    }
}

TEST(Options, DefaultsAreValidAndDocumented) {
    LockClientOptions o;
    EXPECT_EQ(o.table, "locks");
    EXPECT_EQ(o.owner, "");
    EXPECT_EQ(o.pool_size, 4u);
    EXPECT_EQ(o.statement_timeout, 5s);
    EXPECT_EQ(o.connect_timeout, 5s);
    EXPECT_EQ(o.serialization_retries, 10);
    EXPECT_NO_THROW(validate_options(o));
}

TEST(Options, AcceptsReasonableValues) {
    LockClientOptions o;
    o.table = "ops.leases";
    o.owner = "worker-7";
    o.pool_size = 1;
    o.statement_timeout = 1ms;
    o.connect_timeout = 2s;
    o.serialization_retries = 0;
    o.timing = timing(300ms, 200ms, 50ms, 20ms);
    EXPECT_NO_THROW(validate_options(o));
}

TEST(Options, PoolSizeZeroIsRefused) {
    LockClientOptions o;
    o.pool_size = 0;
    auto msg = message_of<InvalidArgumentError>([&] { validate_options(o); });
    EXPECT_TRUE(contains(msg, "pool_size"));
}

TEST(Options, StatementTimeoutMustBePositive) {
    LockClientOptions o;
    o.statement_timeout = 0ms;
    auto msg = message_of<InvalidArgumentError>([&] { validate_options(o); });
    EXPECT_TRUE(contains(msg, "statement_timeout"));
    o.statement_timeout = -1s;
    EXPECT_THROW(validate_options(o), InvalidArgumentError);
}

TEST(Options, ConnectTimeoutBelowTwoSecondsIsRefused) {
    LockClientOptions o;
    o.connect_timeout = 1s;
    auto msg = message_of<InvalidArgumentError>([&] { validate_options(o); });
    EXPECT_TRUE(contains(msg, "connect_timeout"));
    o.connect_timeout = 1999ms;
    EXPECT_THROW(validate_options(o), InvalidArgumentError);
    o.connect_timeout = 0ms;
    EXPECT_THROW(validate_options(o), InvalidArgumentError);
}

TEST(Options, NegativeSerializationRetriesAreRefused) {
    LockClientOptions o;
    o.serialization_retries = -1;
    auto msg = message_of<InvalidArgumentError>([&] { validate_options(o); });
    EXPECT_TRUE(contains(msg, "serialization_retries"));
}

TEST(Options, BadTableNameIsRefused) {
    LockClientOptions o;
    o.table = "locks; DROP TABLE x";
    auto msg = message_of<InvalidArgumentError>([&] { validate_options(o); });
    EXPECT_TRUE(contains(msg, "locks; DROP TABLE x"));
    o.table = "";
    EXPECT_THROW(validate_options(o), InvalidArgumentError);
    o.table = std::string(58, 't');
    EXPECT_THROW(validate_options(o), InvalidArgumentError);
}

TEST(Options, BadOwnerIsRefused) {
    LockClientOptions o;
    o.owner = std::string(256, 'o');
    EXPECT_THROW(validate_options(o), InvalidArgumentError);
    o.owner = "\xff";
    EXPECT_THROW(validate_options(o), InvalidArgumentError);
    o.owner = std::string("a\0b", 3);
    EXPECT_THROW(validate_options(o), InvalidArgumentError);
}

TEST(Options, BadTimingIsRefused) {
    LockClientOptions o;
    o.timing.heartbeat_interval = 10s;  // > lease/2
    auto msg = message_of<InvalidArgumentError>([&] { validate_options(o); });
    EXPECT_TRUE(contains(msg, "heartbeat_interval"));
}

// ---- LockClient construction (never connects) -------------------------------

TEST(LockClientConstruction, BadOptionsThrowInvalidArgument) {
    auto bad = [](auto mutate) {
        LockClientOptions o;
        mutate(o);
        return o;
    };
    EXPECT_THROW(pgelect::LockClient("", bad([](LockClientOptions& o) { o.table = "a.b.c"; })),
                 InvalidArgumentError);
    EXPECT_THROW(pgelect::LockClient("", bad([](LockClientOptions& o) { o.pool_size = 0; })),
                 InvalidArgumentError);
    EXPECT_THROW(
        pgelect::LockClient("", bad([](LockClientOptions& o) { o.timing.retry_interval = 0ms; })),
        InvalidArgumentError);
    EXPECT_THROW(
        pgelect::LockClient("", bad([](LockClientOptions& o) { o.connect_timeout = 1s; })),
        InvalidArgumentError);
    EXPECT_THROW(pgelect::LockClient("", bad([](LockClientOptions& o) { o.owner = "\xc0\x80"; })),
                 InvalidArgumentError);
}

TEST(LockClientConstruction, BadDsnThrowsInvalidArgumentWithoutPassword) {
    auto msg = message_of<InvalidArgumentError>(
        [] { pgelect::LockClient("host=127.0.0.1 password=secret bogus"); });
    EXPECT_TRUE(lacks(msg, "secret"));
}

TEST(LockClientConstruction, DoesNotConnect) {
    // Port 1 on localhost: nothing listens there.  Construction and destruction
    // must still succeed promptly because nothing connects until the first call.
    const auto start = std::chrono::steady_clock::now();
    {
        LockClientOptions o;
        o.table = "ops.locks";
        o.owner = "me";
        pgelect::LockClient client("host=127.0.0.1 port=1 connect_timeout=2", o);
        EXPECT_EQ(client.owner(), "me");
        EXPECT_EQ(client.options().table, "ops.locks");
    }
    EXPECT_LT(pgelect_test::ms_since(start), 1000);
}

TEST(LockClientConstruction, DefaultOwnersAreUnique) {
    pgelect::LockClient a("host=127.0.0.1 port=1");
    pgelect::LockClient b("host=127.0.0.1 port=1");
    EXPECT_FALSE(a.owner().empty());
    EXPECT_NE(a.owner(), b.owner());
    EXPECT_LE(a.owner().size(), 255u);
    EXPECT_NO_THROW(pgelect::detail::validate_owner(a.owner()));
}

}  // namespace

namespace {

// A renewal whose reply is lost must be retried, and answered, before the renew deadline.
TEST(Options, RenewalMustFitTheRenewDeadlineWithARetry) {
    LockClientOptions o;
    EXPECT_NO_THROW(validate_options(o));  // 2 s + 4 s + 1 s + 0.5 s < 10 s
    o.timing = timing(1000ms, 700ms, 200ms, 50ms);
    EXPECT_NO_THROW(validate_options(o));  // derived: 200 + 300 + 75 + 50 < 700

    o.renewal_timeout = 400ms;  // 200 + 400 + 100 + 50 >= 700
    const std::string msg = message_of<InvalidArgumentError>([&] { validate_options(o); });
    EXPECT_TRUE(contains(msg, "renew_deadline (700ms)"));
    EXPECT_TRUE(contains(msg, "renewal statement timeout (400ms)"));
    EXPECT_TRUE(contains(msg, "lower renewal_timeout"));

    LockClientOptions close;
    close.timing = timing(15s, 2100ms, 2000ms);  // no room for a retry after one heartbeat
    const std::string msg2 = message_of<InvalidArgumentError>([&] { validate_options(close); });
    EXPECT_TRUE(contains(msg2, "leaves no time to retry"));
    EXPECT_TRUE(contains(msg2, "heartbeat_interval"));

    LockClientOptions negative;
    negative.renewal_timeout = -1ms;
    EXPECT_THROW(validate_options(negative), InvalidArgumentError);
}

TEST(Options, ManualHeartbeatsAreNotHeldToTheRenewalRule) {
    LockClientOptions o;
    o.timing = timing(15s, 10s, 0ms);
    EXPECT_NO_THROW(validate_options(o));
}

}  // namespace
