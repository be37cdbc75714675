// Failover: a primary and an asynchronous streaming standby
// (scripts/with-postgres-ha), the standby promoted after the primary crashed
// with WAL it never sent.  Fencing tokens keep growing from holder to holder,
// and an acquisition lost with the old primary never runs beside a new one.
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <mutex>
#include <thread>

#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

// Runs a shell command and returns its output (trimmed); fails the test if it fails.
std::string shell(const std::string& command) {
    std::string out;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) {
        ADD_FAILURE() << "popen failed";
        return out;
    }
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    const int status = ::pclose(p);
    EXPECT_EQ(status, 0) << command << ": " << out;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

// Runs `ha-ctl ARGS` (scripts/ha-ctl).
std::string ha_ctl(const std::string& args) {
    const std::string ctl = env("PGELECT_HA_CTL");
    EXPECT_FALSE(ctl.empty()) << "run through scripts/with-postgres-ha";
    return shell(ctl + " " + args);
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
    std::atomic<std::int64_t> timeline{0};
    auto seen = holder.timeline_seen.connect([&](std::int64_t t) { timeline = t; });
    Lock kept = holder.acquire("kept");
    ASSERT_TRUE(eventually([&] { return timeline.load() > 0; }, 10s));
    const std::int64_t before = timeline.load();
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
    // The renewals read the promoted server's timeline (pgelect_timeline,
    // pgelect_failovers_total).
    EXPECT_EQ(timeline.load(), std::stoll(ha_ctl("timeline " + p.standby)));
    EXPECT_GT(timeline.load(), before);
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

// Synchronous replication on, the standby stalled: every commit waits for
// it.  While that lasts, whoever cancels such a wait (an operator, a script)
// makes PostgreSQL answer the write with success and a WARNING although the
// standby never got it.  Such writes are not done: a renewal does not extend
// the lease (the holder loses it at its renew deadline), an acquisition is
// not taken.
class SynchronousReplication {
public:
    SynchronousReplication() { ha_ctl("sync on"); }
    ~SynchronousReplication() {
        ha_ctl("resume");
        ha_ctl("sync off");
    }
};

TEST(Ha, ACancelledSynchronousReplicationWaitIsNotAWrite) {
    const Pair p = Pair::current();
    const std::string table = unique_table("ha_sync");
    auto opts = ha_options(table);
    opts.statement_timeout = 10s;  // the operator's cancel ends the waits, not a timeout
    LockClient setup(node_dsn(p.primary), opts);
    setup.create_table();
    LockClient holder(node_dsn(p.primary), opts);
    LockClient other(node_dsn(p.primary), opts);
    std::mutex mu;
    std::vector<UnknownOutcome> seen;
    auto record = [&](const UnknownOutcome& u) {
        std::lock_guard lk(mu);
        seen.push_back(u);
    };
    auto c1 = holder.outcome_unknown.connect(record);
    auto c2 = other.outcome_unknown.connect(record);
    auto saw = [&](const std::string& name, const std::string& operation) {
        std::lock_guard lk(mu);
        for (const auto& u : seen)
            if (u.name == name && u.operation == operation) return true;
        return false;
    };
    Lock kept = holder.acquire("renewed");
    std::optional<Clock::time_point> last_ok;
    auto c3 = holder.renewal_finished.connect([&](const RenewalReport& r) {
        std::lock_guard lk(mu);
        if (r.ok) last_ok = Clock::now();
    });
    {
        SynchronousReplication sync;
        ha_ctl("wait-caught-up");
        ha_ctl("stall");
        const auto stalled = Clock::now();
        std::atomic<bool> done{false};
        std::atomic<int> cancelled{0};
        std::thread op([&] {
            pqxx::connection c(node_dsn(p.primary));
            while (!done) {
                pqxx::nontransaction tx(c);
                cancelled += tx.exec("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                                     "WHERE wait_event = 'SyncRep' AND pid <> pg_backend_pid()")
                                 .size();
                std::this_thread::sleep_for(50ms);
            }
        });
        try {
            Lock taken = other.try_acquire("fresh");
            ADD_FAILURE() << "acquired although the standby never received the acquisition";
        } catch (const UnavailableError& e) {
            EXPECT_NE(std::string(e.what()).find("outcome unknown"), std::string::npos) << e.what();
            std::cout << "  " << e.what() << "\n";
        }
        EXPECT_TRUE(saw("fresh", "acquire"));
        // Renewals keep getting the warning: the lease ends at its renew deadline.
        EXPECT_TRUE(eventually([&] { return kept.is_released(); },
                               opts.timing.renew_deadline + 10s))
            << "renewals answered with a warning kept the lease";
        EXPECT_TRUE(saw("renewed", "renew"));
        {
            std::lock_guard lk(mu);
            if (last_ok) {
                EXPECT_LE(*last_ok, stalled + opts.timing.heartbeat_interval + 2s)
                    << "a renewal counted as done while the standby was stalled";
            }
        }
        std::cout << "  lost: " << kept.loss_reason() << "; " << cancelled.load()
                  << " waits cancelled\n";
        done = true;
        op.join();
    }
    // Replication back: the group can be won again, within a lease.
    Lock again = other.acquire("fresh");
    EXPECT_GT(again.fencing_token(), 0);
    again.release();
}

// What a client and `pgelect status --ha` say about the pair: the standby
// is asynchronous (a promotion may lose acknowledged writes) until
// synchronous replication is on.
TEST(Ha, ReplicationIsReportedAndAsynchronousStandbysAreWarnedAbout) {
    const Pair p = Pair::current();
    ha_ctl("wait-caught-up");
    std::mutex mu;
    std::vector<std::string> logged;
    set_log_sink([&](LogLevel, std::string_view m) {
        std::lock_guard lk(mu);
        logged.emplace_back(m);
    });
    const std::string table = unique_table("ha_info");
    {
        LockClient client(node_dsn(p.primary), ha_options(table));
        client.create_table();  // the first connection: the warning
        const ReplicationInfo info = client.replication_info();
        EXPECT_FALSE(info.standby);
        EXPECT_EQ(info.timeline, std::stoll(ha_ctl("timeline " + p.primary)));
        ASSERT_EQ(info.standbys.size(), 1u);
        EXPECT_EQ(info.standbys[0].sync_state, "async");
        EXPECT_EQ(info.standbys[0].state, "streaming");
        EXPECT_NE(info.risk().find("standbys that do not confirm commits"), std::string::npos)
            << info.risk();
    }
    set_log_sink(nullptr);
    {
        std::lock_guard lk(mu);
        ASSERT_EQ(logged.size(), 1u) << "one warning per client, at its first connection";
        EXPECT_NE(logged[0].find("standbys that do not confirm commits: "), std::string::npos)
            << logged[0];
        EXPECT_NE(logged[0].find("(async)"), std::string::npos) << logged[0];
    }
    {
        SynchronousReplication sync;
        ha_ctl("wait-caught-up");
        LockClient client(node_dsn(p.primary), ha_options(table));
        EXPECT_TRUE(eventually(
            [&] {
                const auto info = client.replication_info();
                return info.standbys.size() == 1 && info.standbys[0].sync_state == "sync";
            },
            10s));
        const ReplicationInfo info = client.replication_info();
        EXPECT_EQ(info.synchronous_standby_names, "*");
        EXPECT_EQ(info.risk(), "");
    }
    // The command line shows the same.
    const std::string out = shell(std::string(PGELECT_CLI_BIN) + " status --ha --dsn '" +
                                  node_dsn(p.primary) + "' --table " + table);
    EXPECT_NE(out.find("standbys:\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  streaming  async\n"), std::string::npos) << out;
    EXPECT_NE(out.find("warning: standbys that do not confirm commits"), std::string::npos) << out;
    LockClient(node_dsn(p.primary), ha_options(table)).drop_table();
}

}  // namespace
}  // namespace pgelect::test
