// Failover: a primary and an asynchronous streaming standby
// (scripts/with-postgres-ha), the standby promoted after the primary crashed
// with WAL it never sent.  Fencing tokens keep growing from holder to holder,
// and an acquisition lost with the old primary never runs beside a new one.
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

// Runs `ha-ctl ARGS` and returns its output (trimmed); fails the test if it fails.
std::string ha_ctl(const std::string& args) {
    const std::string ctl = env("PGELECT_HA_CTL");
    EXPECT_FALSE(ctl.empty()) << "run through scripts/with-postgres-ha";
    std::string out;
    FILE* p = ::popen((ctl + " " + args + " 2>&1").c_str(), "r");
    if (p == nullptr) {
        ADD_FAILURE() << "popen failed";
        return out;
    }
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    const int status = ::pclose(p);
    EXPECT_EQ(status, 0) << "ha-ctl " << args << ": " << out;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

std::string node_dsn(const std::string& node) { return ha_ctl("dsn " + node); }

// The two nodes: which is primary now, which standby.  The standby is
// brought back (rebuilt from the primary) if an earlier test left it down.
struct Pair {
    std::string primary, standby;
    static Pair current() {
        Pair p;
        p.primary = ha_ctl("primary");
        p.standby = p.primary == "1" ? "2" : "1";
        if (ha_ctl("role " + p.standby) == "down") ha_ctl("rebuild " + p.standby);
        return p;
    }
};

LeaseTiming ha_timing() {
    // Renewals must survive a loaded machine; the lease is what the
    // quarantine costs after a promotion.
    return loaded_timing();
}

LockClientOptions ha_options(const std::string& table) {
    LockClientOptions o;
    o.table = table;
    o.timing = ha_timing();
    o.connect_timeout = 2s;
    o.statement_timeout = 2s;
    return o;
}

// A primary crash that loses WAL: the standby stops receiving, `on_primary`
// writes on the primary (acknowledged: asynchronous replication), then the
// primary crashes and the standby is promoted.
void crash_after(const Pair& p, const std::function<void()>& on_primary) {
    ha_ctl("wait-caught-up");
    ha_ctl("stall");
    on_primary();
    ha_ctl("kill " + p.primary);
    ha_ctl("resume");
    ha_ctl("promote " + p.standby);
}

TEST(Ha, FencingTokensKeepGrowingAcrossAPromotionThatLostWal) {
    const Pair p = Pair::current();
    const std::string table = unique_table("ha_tokens");
    const auto opts = ha_options(table);
    std::int64_t last_before = 0;
    {
        LockClient old_primary(node_dsn(p.primary), opts);
        old_primary.create_table();
        for (int i = 0; i < 5; ++i) old_primary.acquire("g").release();
        crash_after(p, [&] {
            // More than the 32 values a sequence logs ahead: the standby never
            // learns that these tokens were handed out.
            for (int i = 0; i < 40; ++i) {
                Lock l = old_primary.acquire("g");
                last_before = std::max(last_before, l.fencing_token());
                l.release();
            }
        });
    }
    const std::string timeline = ha_ctl("timeline " + p.standby);
    LockClient promoted(env("PGELECT_HA_DSN"), opts);
    Lock l = promoted.acquire("g");
    EXPECT_GT(l.fencing_token(), last_before)
        << "the first token after the promotion (timeline " << timeline
        << ") is below the last one the old primary handed out";
    std::cout << "  last token before the promotion " << last_before << ", first after "
              << l.fencing_token() << " (timeline " << timeline << ")\n";
    l.release();
    ha_ctl("rebuild " + p.primary);
}

TEST(Ha, AnAcquisitionLostWithTheOldPrimaryNeverRunsBesideANewOne) {
    const Pair p = Pair::current();
    const std::string table = unique_table("ha_quarantine");
    // A renew deadline well beyond the seconds the crash and the promotion
    // take: without the quarantine the contender would win while the old
    // holder still believes.
    auto opts = ha_options(table);
    opts.timing.lease_duration = 15s;
    opts.timing.renew_deadline = 12s;
    opts.timing.heartbeat_interval = 1s;
    LockClient setup(node_dsn(p.primary), opts);
    setup.create_table();

    // The old holder: its acquisition is acknowledged by the primary and lost.
    LockClient old_client(node_dsn(p.primary), opts);
    std::optional<Lock> old_lock;
    Clock::time_point old_start, old_acquired;
    crash_after(p, [&] {
        old_start = Clock::now();
        old_lock.emplace(old_client.acquire("q"));
        old_acquired = Clock::now();
    });
    ASSERT_TRUE(old_lock.has_value());

    // A contender on the promoted server, at once.
    LockClient new_client(env("PGELECT_HA_DSN"), opts);
    Lock new_lock = new_client.acquire("q");
    const auto new_start = Clock::now();

    // The old holder believed until its renew deadline at the latest (its
    // renewals cannot reach the crashed primary).
    ASSERT_TRUE(eventually([&] { return old_lock->is_released(); }, 20s));
    const auto old_end = old_lock->valid_until();
    EXPECT_LE(old_end, new_start)
        << "two holders for "
        << std::chrono::duration_cast<std::chrono::milliseconds>(old_end - new_start).count()
        << " ms";
    EXPECT_LE(old_end, old_acquired + opts.timing.renew_deadline);
    EXPECT_GT(new_lock.fencing_token(), old_lock->fencing_token());
    std::cout << "  the new holder began "
              << std::chrono::duration_cast<std::chrono::milliseconds>(new_start - old_end).count()
              << " ms after the old one's belief ended ("
              << std::chrono::duration_cast<std::chrono::milliseconds>(new_start - old_start).count()
              << " ms after the lost acquisition)\n";
    new_lock.release();
    ha_ctl("rebuild " + p.primary);
}

TEST(Ha, HoldersWhoseRowsSurvivedKeepLeadingThroughAPromotion) {
    const Pair p = Pair::current();
    const std::string table = unique_table("ha_survivor");
    const auto opts = ha_options(table);
    LockClient setup(node_dsn(p.primary), opts);
    setup.create_table();
    LockClient holder(env("PGELECT_HA_DSN"), opts);
    Lock kept = holder.acquire("kept");
    ha_ctl("wait-caught-up");
    ha_ctl("kill " + p.primary);
    ha_ctl("promote " + p.standby);
    // Its renewals find the new primary (the multi-host DSN) and its row.
    std::atomic<int> renewals{0};
    auto c = holder.renewal_finished.connect([&](const RenewalReport& r) {
        if (r.ok && !r.still_held.empty()) ++renewals;
    });
    EXPECT_TRUE(eventually([&] { return renewals.load() >= 2; }, 20s));
    EXPECT_FALSE(kept.is_released()) << kept.loss_reason();
    // Nobody else can take it meanwhile.
    LockClient other(env("PGELECT_HA_DSN"), opts);
    EXPECT_THROW(other.try_acquire("kept"), NotAcquiredError);
    kept.release();
    ha_ctl("rebuild " + p.primary);
}

TEST(Ha, BumpEpochAfterARestoreWithAnEarlierTimeline) {
    const Pair p = Pair::current();
    const std::string table = unique_table("ha_bump");
    const auto opts = ha_options(table);
    LockClient client(node_dsn(p.primary), opts);
    client.create_table();
    Lock l = client.acquire("b");
    const auto before = l.fencing_token();
    l.release();
    // As after a restore into a cluster on an earlier timeline: the table has
    // seen a later one.
    {
        pqxx::connection c(node_dsn(p.primary));
        pqxx::work tx(c);
        tx.exec("INSERT INTO \"" + table + "_epoch\" VALUES (1000, now())");
        tx.commit();
    }
    try {
        client.acquire("b");
        ADD_FAILURE() << "acquired below the table's highest timeline";
    } catch (const FailedPreconditionError& e) {
        EXPECT_NE(std::string(e.what()).find("pgelect schema bump-epoch"), std::string::npos)
            << e.what();
    }
    const std::int64_t floor = client.bump_epoch(0);
    EXPECT_GE(floor, 1000LL * (1LL << 40));
    Lock after = client.acquire("b");
    EXPECT_GT(after.fencing_token(), floor);
    EXPECT_GT(after.fencing_token(), before);
    after.release();
}

}  // namespace
}  // namespace pgelect::test
