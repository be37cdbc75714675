// Through PgBouncer (scripts/with-pgbouncer), in the pool mode it was started
// with: session pooling with the default options, transaction pooling with
// Pooling::transaction.  The clients under test connect through the pooler;
// the test's own checks (sql()) go to the server directly.
#include <atomic>
#include <future>
#include <mutex>

#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string pooler_dsn() {
    const char* d = std::getenv("PGELECT_POOLER_DSN");
    if (d == nullptr || *d == '\0') {
        ADD_FAILURE() << "PGELECT_POOLER_DSN is not set: run through scripts/with-pgbouncer";
        return "host=127.0.0.1 port=1 connect_timeout=2";
    }
    return d;
}

bool transaction_pooling() {
    const char* m = std::getenv("PGELECT_POOLER_MODE");
    return m != nullptr && std::string(m) == "transaction";
}

// The table is created and dropped directly (LockTableTest).
class PoolerTest : public LockTableTest {
protected:
    // Through the pooler, configured for its mode.
    LockClientOptions pooled(LeaseTiming timing = loaded_timing()) const {
        LockClientOptions o = options_for(table_, timing);
        if (transaction_pooling()) o.pooling = Pooling::transaction;
        return o;
    }
};

TEST_F(PoolerTest, LocksAreTakenRenewedAndReleased) {
    LockClient a(pooler_dsn(), pooled());
    LockClient b(pooler_dsn(), pooled());
    AcquireOptions with_data;
    with_data.data = "first";
    Lock held = a.acquire("job", with_data);
    EXPECT_EQ(a.get("job").owner, a.owner());
    EXPECT_THROW(b.try_acquire("job"), NotAcquiredError);
    // Renewed through the pooler well past its renew deadline.
    const auto until = Clock::now() + loaded_timing().renew_deadline + 1s;
    while (Clock::now() < until) {
        ASSERT_FALSE(held.is_released()) << held.loss_reason();
        std::this_thread::sleep_for(50ms);
    }
    held.set_data("second");
    EXPECT_EQ(b.get("job").data, std::optional<std::string>("second"));
    EXPECT_EQ(b.get_all().size(), 1u);
    const auto token = held.fencing_token();
    held.release();
    Lock next = b.try_acquire("job");
    EXPECT_GT(next.fencing_token(), token);
    next.release();
}

// Session pooling: the statement timeout (set by a statement on each new
// connection, not in the refused startup options) holds.  Transaction
// pooling sets none: a statement the server does not finish is cut off by
// pgelect's own watchdog, and the missing role setting is logged.
TEST_F(PoolerTest, AStatementTheServerDoesNotFinishEndsInTime) {
    std::mutex mu;
    std::vector<std::string> logged;
    set_log_sink([&](LogLevel, std::string_view m) {
        std::lock_guard lk(mu);
        logged.emplace_back(m);
    });
    LockClientOptions o = pooled();
    o.statement_timeout = 1000ms;
    LockClient client(pooler_dsn(), o);
    pqxx::connection c(dsn());
    pqxx::work blocker(c);
    blocker.exec_params("SELECT pg_advisory_xact_lock($1::regclass::oid::int4, hashtext($2))",
                        "\"" + table_ + "\"", "blocked");
    const auto start = Clock::now();
    try {
        client.try_acquire("blocked");
        ADD_FAILURE() << "acquired while the token's advisory lock was held";
    } catch (const UnavailableError& e) {
        const std::string what = e.what();
        if (transaction_pooling()) {
            EXPECT_NE(what.find("no answer from PostgreSQL within 2000 ms"), std::string::npos) << what;
        } else {
            EXPECT_NE(what.find("statement timed out"), std::string::npos) << what;
        }
    }
    const auto took = Clock::now() - start;
    EXPECT_LT(took, 2000ms + 3s) << "the statement was not cut off";
    blocker.abort();
    set_log_sink(nullptr);
    if (transaction_pooling()) {
        std::lock_guard lk(mu);
        bool told = false;
        for (const auto& m : logged) told |= m.find("ALTER ROLE postgres SET statement_timeout = '1000ms'") != std::string::npos;
        EXPECT_TRUE(told) << "no warning about the role's missing statement_timeout";
    }
    // The client works on.  (With transaction pooling the statement that was
    // cut off still ran on the server once the advisory lock was free: its
    // outcome was unknown, and "blocked" may be held by it until its lease ends.)
    EXPECT_NO_THROW(client.try_acquire("other").release());
}

// A release wakes a waiter at once where LISTEN works: session pooling, or
// transaction pooling with a direct listen_dsn.  Transaction pooling without
// one polls.
TEST_F(PoolerTest, AReleaseWakesAWaiter) {
    LeaseTiming t = loaded_timing();
    t.retry_interval = 4000ms;  // a missed wake-up would cost this
    LockClient holder(pooler_dsn(), pooled(t));
    LockClientOptions o = pooled(t);
    if (transaction_pooling()) o.listen_dsn = dsn();
    LockClient waiter_client(pooler_dsn(), o);
    Lock held = holder.acquire("wake");
    // The waiter reads the row, then LISTENs; once LISTEN is active it reads
    // the row again (a release meanwhile would have been missed).
    std::atomic<int> reads{0};
    AcquireOptions counting;
    counting.observer = [&](const LockObservation&) { ++reads; };
    auto waiter = std::async(std::launch::async, [&] { return waiter_client.acquire("wake", counting); });
    ASSERT_TRUE(eventually([&] { return reads.load() >= 2; }, 10s));
    const auto released = Clock::now();
    held.release();
    ASSERT_EQ(waiter.wait_for(15s), std::future_status::ready);
    Lock taken = waiter.get();
    EXPECT_LT(Clock::now() - released, 2000ms) << "woken by the retry poll, not by NOTIFY";
    taken.release();

    if (transaction_pooling()) {
        // No listen_dsn: no LISTEN on the pooler; the poll finds the release.
        LockClient polling(pooler_dsn(), pooled(loaded_timing()));
        Lock again = holder.acquire("wake");
        auto w = std::async(std::launch::async, [&] { return polling.acquire("wake"); });
        std::this_thread::sleep_for(300ms);
        again.release();
        ASSERT_EQ(w.wait_for(15s), std::future_status::ready);
        w.get().release();
    }
}

TEST_F(PoolerTest, ElectorsHandOverThroughThePooler) {
    LockClient a_client(pooler_dsn(), pooled());
    LockClient b_client(pooler_dsn(), pooled());
    ElectorOptions ao;
    ao.group = "g";
    ao.identity = "a";
    ao.timing = loaded_timing();
    ElectorOptions bo = ao;
    bo.identity = "b";
    Elector a(a_client, ao);
    a.start();
    ASSERT_TRUE(a.wait_for_leadership(10s));
    Elector b(b_client, bo);
    b.start();
    const auto first = a.leadership();
    ASSERT_TRUE(first.has_value());
    a.stop();
    ASSERT_TRUE(b.wait_for_leadership(15s));
    EXPECT_GT(b.leadership()->fencing_token, first->fencing_token);
    b.stop();
}

// PgBouncer accepts few startup parameters: one it refuses is reported as
// what it is, not as an unreachable database.
TEST_F(PoolerTest, ARefusedStartupParameterIsNamed) {
    LockClient client(pooler_dsn() + " options='-c search_path=public'", pooled());
    try {
        client.try_acquire("x");
        ADD_FAILURE() << "PgBouncer accepted the options startup parameter";
    } catch (const FailedPreconditionError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("unsupported startup parameter: options"), std::string::npos) << what;
        EXPECT_NE(what.find("ignore_startup_parameters"), std::string::npos) << what;
    }
}

}  // namespace
}  // namespace pgelect::test
