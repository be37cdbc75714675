// Protocol rules beyond pglock: round trips, read-only waiting, bounded
// statements, replaced connections, fencing-token order.
#include <future>
#include <vector>

#include "lock/names.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

class Protocol : public LockTableTest {
protected:
    // Calls of statements on this test's table, by statement kind, from pg_stat_statements.
    long calls(const std::string& prefix) {
        auto r = sql("SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements WHERE query LIKE '" +
                     prefix + "%' AND query LIKE '%\"" + table_ + "\"%'");
        return r[0][0].as<long>();
    }
    long total_calls() {
        auto r = sql("SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements WHERE query LIKE '%\"" +
                     table_ + "\"%' AND query NOT LIKE '%pg_stat_statements%'");
        return r[0][0].as<long>();
    }
};

TEST_F(Protocol, OneStatementPerAcquireReleaseAndRead) {
    auto c = make_client(LeaseTiming{.lease_duration = 20s, .renew_deadline = 15s,
                                     .heartbeat_interval = 0ms, .retry_interval = 1s});
    c->acquire("warm").release();  // connection set up
    const long before = total_calls();
    auto lock = c->acquire("rt");
    EXPECT_EQ(total_calls() - before, 1) << "acquire";
    lock.release();
    EXPECT_EQ(total_calls() - before, 2) << "release";
    c->acquire("rt", AcquireOptions{.keep_on_release = true}).release();
    EXPECT_EQ(total_calls() - before, 4);
    c->get("rt");
    EXPECT_EQ(total_calls() - before, 5) << "read";
}

TEST_F(Protocol, WaitingContendersOnlyRead) {
    LeaseTiming slow{.lease_duration = 20s, .renew_deadline = 15s, .heartbeat_interval = 0ms,
                     .retry_interval = 20ms};
    auto holder_client = make_client(slow);
    auto holder = holder_client->acquire("busy");
    auto waiter = make_client(slow);
    const long inserts_before = calls("WITH a AS (INSERT INTO");
    const long selects_before = calls("SELECT name, record_version_number");
    std::stop_source stop;
    auto f = std::async(std::launch::async, [&] {
        try {
            waiter->acquire("busy", {}, stop.get_token());
        } catch (const NotAcquiredError&) {
        }
    });
    ASSERT_TRUE(eventually([&] { return calls("SELECT name, record_version_number") - selects_before >= 20; }));
    stop.request_stop();
    f.get();
    // One optimistic attempt when the wait began, then reads only.
    EXPECT_LE(calls("WITH a AS (INSERT INTO") - inserts_before, 1);
    EXPECT_FALSE(holder.is_released());
}

TEST_F(Protocol, ContendersOfOneClientReadAllTheirRowsInOneStatementPerTick) {
    LeaseTiming slow{.lease_duration = 20s, .renew_deadline = 15s, .heartbeat_interval = 0ms,
                     .retry_interval = 50ms};
    constexpr int kGroups = 10;
    auto holder_client = make_client(slow);
    std::vector<Lock> held;
    for (int i = 0; i < kGroups; ++i) held.push_back(holder_client->acquire("g" + std::to_string(i)));
    auto waiter = make_client(slow);
    std::stop_source stop;
    std::vector<std::future<void>> waiting;
    for (int i = 0; i < kGroups; ++i) {
        waiting.push_back(std::async(std::launch::async, [&, i] {
            try {
                waiter->acquire("g" + std::to_string(i), {}, stop.get_token());
            } catch (const NotAcquiredError&) {
            }
        }));
    }
    auto reads = [&] {
        auto r = sql("SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(rows), 0)::bigint "
                     "FROM pg_stat_statements WHERE query LIKE 'SELECT name, record_version_number%' "
                     "AND query LIKE '%\"" + table_ + "\"%'");
        return std::make_pair(r[0][0].as<long>(), r[0][1].as<long>());
    };
    // The contenders fall into step within a tick or two.
    ASSERT_TRUE(eventually([&] { return reads().first >= 2 * kGroups; }));
    const auto [calls_before, rows_before] = reads();
    ASSERT_TRUE(eventually([&] { return reads().first >= calls_before + 20; }));
    const auto [calls_after, rows_after] = reads();
    stop.request_stop();
    for (auto& w : waiting) w.get();
    // One statement per tick reads every contender's row (one each: kGroups).
    const double rows_per_read = double(rows_after - rows_before) / double(calls_after - calls_before);
    EXPECT_GE(rows_per_read, kGroups - 1.0) << (calls_after - calls_before) << " reads";
    for (auto& l : held) EXPECT_FALSE(l.is_released());
}

TEST_F(Protocol, StatementsAreBoundedByTheStatementTimeout) {
    auto o = options_for(table_);
    o.statement_timeout = 300ms;
    LockClient c(dsn(), o);
    c.acquire("row", AcquireOptions{.keep_on_release = true}).release();
    pqxx::connection blocker(dsn());
    pqxx::work tx(blocker);
    tx.exec("SELECT * FROM " + table_ + " WHERE name = 'row' FOR UPDATE");
    const auto start = Clock::now();
    try {
        c.try_acquire("row");
        FAIL() << "acquired a row locked by another transaction";
    } catch (const UnavailableError& e) {
        EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
    }
    EXPECT_LT(Clock::now() - start, 2s);
    tx.abort();
    EXPECT_NO_THROW(c.try_acquire("row").release());
}

TEST_F(Protocol, BrokenConnectionsAreReplacedTransparently) {
    // The renewal connection must be reopened within the renew deadline; on a
    // loaded machine opening one can take longer than 700 ms, which would cost
    // the lease without telling anything about the replacement.
    const LeaseTiming timing = loaded_timing();
    auto c = make_client(timing);
    auto lock = c->acquire("survivor");
    c->acquire("other").release();
    // Kill every connection of this client (pool, renewal, listener).
    const auto killed = Clock::now();
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgelect' "
        "AND query LIKE '%\"" + table_ + "\"%' AND pid <> pg_backend_pid()");
    EXPECT_NO_THROW(c->acquire("after-kill").release());
    EXPECT_NO_THROW(c->get("survivor"));
    // The renewal connection comes back too: the lock outlives the renew
    // deadline it had when its connections died, which only renewals through
    // a new connection can have moved on.
    const auto v = lock.record_version_number();
    ASSERT_TRUE(eventually([&] { return lock.record_version_number() != v; }, 10s));
    std::this_thread::sleep_until(killed + timing.renew_deadline + timing.heartbeat_interval);
    EXPECT_FALSE(lock.is_released()) << lock.loss_reason();
}

TEST_F(Protocol, RenewalFindsATakenOverRowAndReportsLoss) {
    auto lock = client_->acquire("stolen");
    sql("UPDATE " + table_ + " SET fencing_token = fencing_token + 1000 WHERE name = 'stolen'");
    EXPECT_TRUE(eventually([&] { return lock.is_released(); }, 3s));
    // The token fires just after, on a worker thread (its callbacks are user code).
    EXPECT_TRUE(eventually([&] { return lock.lost_token().stop_requested(); }, 1s));
    EXPECT_EQ(lock.loss_cause(), LossCause::taken_over);
}

TEST_F(Protocol, RenewDeadlineFiresWhileTheRenewalHangs) {
    auto lock = client_->acquire("hang");
    // Hold the row so the renewal UPDATE blocks (statement timeout is 5 s, the
    // renew deadline 700 ms): the local timer must give up first.
    pqxx::connection blocker(dsn());
    pqxx::work tx(blocker);
    tx.exec("SELECT * FROM " + table_ + " WHERE name = 'hang' FOR UPDATE");
    const auto start = Clock::now();
    ASSERT_TRUE(eventually([&] { return lock.lost_token().stop_requested(); }, 3s));
    EXPECT_LT(Clock::now() - start, 1000ms);
    EXPECT_TRUE(lock.is_released());
    tx.abort();
}

LeaseTiming slow_poll() {
    // Polls every 5 s: a waiter that gets the lock much sooner was woken by NOTIFY.
    return LeaseTiming{.lease_duration = 20s, .renew_deadline = 15s, .heartbeat_interval = 2s,
                       .retry_interval = 5s};
}

// Backends listening on the channel of `table`.
std::vector<int> listener_pids(const std::string& table) {
    const std::string channel = detail::parse_table_name(table).channel();
    std::vector<int> pids;
    for (const auto& row :
         sql("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %" + channel + "%'")) {
        pids.push_back(row[0].as<int>());
    }
    return pids;
}

TEST_F(Protocol, ReleaseWakesAWaiterThroughNotify) {
    auto holder_client = make_client(slow_poll());
    auto waiter = make_client(slow_poll());
    auto holder = holder_client->acquire("notify");
    auto f = std::async(std::launch::async, [&] { return waiter->acquire("notify"); });
    ASSERT_TRUE(eventually([&] { return !listener_pids(table_).empty(); }, 5s));
    std::this_thread::sleep_for(100ms);  // let the waiter finish its first poll
    const auto start = Clock::now();
    holder.release();
    ASSERT_EQ(f.wait_for(2s), std::future_status::ready);
    EXPECT_LT(Clock::now() - start, 1s);  // far below the 5 s poll
    f.get().release();
}

TEST_F(Protocol, ListenerReconnectsAfterItsConnectionIsKilled) {
    auto holder_client = make_client(slow_poll());
    auto waiter = make_client(slow_poll());
    auto holder = holder_client->acquire("relisten");
    auto f = std::async(std::launch::async, [&] { return waiter->acquire("relisten"); });
    ASSERT_TRUE(eventually([&] { return listener_pids(table_).size() == 1; }, 5s));
    const int old_pid = listener_pids(table_)[0];
    sql("SELECT pg_terminate_backend(" + std::to_string(old_pid) + ")");
    ASSERT_TRUE(eventually([&] {
        auto p = listener_pids(table_);
        return p.size() == 1 && p[0] != old_pid;
    }, 10s));
    std::this_thread::sleep_for(200ms);  // the waiter re-polls after the gap, then waits again
    const auto start = Clock::now();
    holder.release();
    ASSERT_EQ(f.wait_for(3s), std::future_status::ready);
    EXPECT_LT(Clock::now() - start, 1s);
    f.get().release();
}

}  // namespace
}  // namespace pgelect::test
