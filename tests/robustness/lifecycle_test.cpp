// Construction and destruction, a thousand times over: a LockClient holding
// locks, an Elector in the middle of its campaign or leading, an
// ElectionService, each also with the database unreachable or stopped.
//
// After every batch the process is back to its baseline number of threads and
// the server to its baseline number of client connections; every destructor
// returns within the statement timeout plus a margin; no destroyed client
// leaves a lock row held (the destructor releases, or, when the database is
// down, the row is free for others after one lease).  Leaks proper are the
// business of the ASan/LSan build; RSS growth is a coarse check without it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <random>
#include <sstream>

#include "pgelect/log.hpp"
#include "pgelect/service.hpp"
#include "ports.hpp"
#include "test_env.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define PGELECT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PGELECT_TEST_ASAN 1
#endif
#endif

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kIterations = 1000;
constexpr int kBatch = 100;
constexpr auto kStatementTimeout = 1s;
// The documented bound (docs/architecture.md, "Shutdown"): a statement is cut
// off 1 s after its statement timeout.  Here the server answers (or refuses
// at once), so a destructor waits for no such cut-off at all.  What a busy
// machine adds (the process waiting for a CPU, seen at 1-3 s with two
// CPU-bound processes beside the suite) is measured by StallMeter and not
// counted against this bound.
constexpr auto kDestroyBound = kStatementTimeout + 1s;
constexpr auto kSettle = 15s;  // deadline for threads and server backends to go away

long ms(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// How long this process was kept from running: a thread that asks to wake
// every 5 ms adds up how much later than that it woke (less 1 ms of ordinary
// timer slack).  On an idle machine the total barely moves; on a loaded one it
// grows by about as much as any other thread of the process was kept waiting.
class StallMeter {
  public:
    StallMeter()
        : thread_([this](std::stop_token stop) {
              constexpr auto kTick = 5ms, kSlack = 1ms;
              while (!stop.stop_requested()) {
                  const auto asked = Clock::now() + kTick;
                  std::this_thread::sleep_until(asked);
                  const auto late = Clock::now() - asked - kSlack;
                  if (late > Clock::duration::zero()) stalled_ += late.count();
              }
          }) {}
    Clock::duration stalled() const { return Clock::duration(stalled_.load()); }

  private:
    std::atomic<Clock::rep> stalled_{0};
    std::jthread thread_;  // last: started once stalled_ exists
};

// One meter for the process, started before the tests take their baseline
// number of threads.
StallMeter& stall_meter() {
    static StallMeter meter;
    return meter;
}

std::size_t thread_count() {
    std::size_t n = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
         it.increment(ec)) {
        ++n;
    }
    return n;
}

std::size_t rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
    }
    return 0;
}

// A local TCP port nothing listens on: connecting is refused at once.
std::string unreachable_dsn() {
    return "host=127.0.0.1 port=" + std::to_string(closed_port()) +
           " user=postgres dbname=postgres connect_timeout=2";
}

void pg_ctl(const std::string& args) {
    const char* ctl = std::getenv("PGELECT_PG_CTL");
    ASSERT_NE(ctl, nullptr) << "PGELECT_PG_CTL is not set: run through scripts/with-postgres";
    const std::string cmd = std::string(ctl) + " " + args + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// Electors log failed campaign attempts; thousands of electors failing while
// the database is unreachable would bury the test's own output.  The messages
// are counted instead (the sink is called from many threads at once).
class QuietLog {
  public:
    QuietLog() {
        set_log_sink([this](LogLevel, std::string_view) { ++messages_; });
    }
    ~QuietLog() { set_log_sink(nullptr); }
    QuietLog(const QuietLog&) = delete;
    QuietLog& operator=(const QuietLog&) = delete;

  private:
    std::atomic<long> messages_{0};
};

// The administrator's view of the server, on its own connection (reopened
// after a server restart).
class Admin {
  public:
    int client_backends() {
        return scalar<int>(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()");
    }
    long held_rows(const std::string& table) {
        return scalar<long>("SELECT count(*) FROM \"" + table +
                            "\" WHERE record_version_number IS NOT NULL");
    }
    bool row_held(const std::string& table, const std::string& name) {
        return scalar<long>("SELECT count(*) FROM \"" + table +
                                "\" WHERE name = $1 AND record_version_number IS NOT NULL",
                            name) > 0;
    }
    // Connections whose last statement was a LISTEN (contenders' listeners).
    int listening() {
        return scalar<int>(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND query LIKE 'LISTEN %'");
    }
    // Closes the connection (before the server stops: libpqxx 6 leaks the
    // result of a statement that finds its connection broken).
    void disconnect() { conn_.reset(); }
    // Rows held by `owner`, other than `except`.
    long held_by(const std::string& table, const std::string& owner, const std::string& except) {
        return scalar<long>(
            "SELECT count(*) FROM \"" + table +
                "\" WHERE owner = $1 AND name <> $2 AND record_version_number IS NOT NULL",
            owner, except);
    }

  private:
    template <class T, class... Args>
    T scalar(const std::string& statement, const Args&... args) {
        for (int attempt = 0;; ++attempt) {
            try {
                if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(dsn());
                pqxx::nontransaction tx(*conn_);
                return tx.exec_params1(statement, args...)[0].template as<T>();
            } catch (const pqxx::broken_connection&) {
                conn_.reset();
                if (attempt > 0) throw;
            }
        }
    }
    std::unique_ptr<pqxx::connection> conn_;
};

// Destroys objects, timing each destructor.
class Destroyer {
  public:
    explicit Destroyer(std::string what) : what_(std::move(what)) {}
    ~Destroyer() {
        std::cout << "  " << what_ << ": " << count_ << " destructions, slowest " << ms(max_)
                  << " ms, longest wait for a CPU during one " << ms(max_stalled_) << " ms\n";
    }
    template <class T>
    void destroy(std::unique_ptr<T>& p, const char* label) {
        destroy(p, label, kDestroyBound);
    }
    template <class T>
    void destroy(std::unique_ptr<T>& p, const char* label, Clock::duration bound) {
        const auto stalled_before = stall_meter().stalled();
        const auto start = Clock::now();
        p.reset();
        const auto took = Clock::now() - start;
        const auto stalled = stall_meter().stalled() - stalled_before;
        max_ = std::max(max_, took);
        max_stalled_ = std::max(max_stalled_, stalled);
        ++count_;
        EXPECT_LT(took - stalled, bound)
            << label << " took " << ms(took) << " ms to destroy, " << ms(stalled)
            << " ms of them with the process waiting for a CPU";
    }
    Clock::duration max() const { return max_; }

  private:
    std::string what_;
    Clock::duration max_{};
    Clock::duration max_stalled_{};
    int count_ = 0;
};

LockClientOptions cheap_options(const std::string& table) {
    // A 2 s lease: a lease left behind is taken over after one lease plus a
    // poll and a round trip, which a loaded machine stretched past 2 s; with
    // 2 s that bound (3 s) stays clear of two leases (4 s), the defect.
    LeaseTiming t = fast_timing();  // 200 ms heartbeat, 50 ms retry
    t.lease_duration = 2000ms;
    t.renew_deadline = 1400ms;
    LockClientOptions o = options_for(table, t);
    o.pool_size = 1;
    o.statement_timeout = kStatementTimeout;
    o.connect_timeout = 2s;
    return o;
}

class Lifecycle : public LockTableTest {
  protected:
    void SetUp() override {
        LockTableTest::SetUp();
        client_.reset();  // the fixture's client would count towards the baseline
        stall_meter();    // its thread is part of the baseline
        rng_.seed(20240601);
    }

    // Baselines, taken once the objects that live through the test exist.
    void take_baseline() {
        threads_ = thread_count();
        backends_ = admin_.client_backends();
    }

    // Threads and server connections are back to the baseline (within a deadline).
    void expect_baseline(const std::string& when) {
        // Joined threads leave /proc/self/task a moment after join() returns.
        EXPECT_TRUE(eventually([&] { return thread_count() <= threads_; }, kSettle, 2ms))
            << when << ": " << thread_count() << " threads, baseline " << threads_;
        // Backends exit asynchronously after the client closes its connection.
        int seen = -1;
        EXPECT_TRUE(eventually([&] { return (seen = admin_.client_backends()) <= backends_; },
                               kSettle, 10ms))
            << when << ": " << seen << " client connections on the server, baseline " << backends_;
    }

    // Another client takes every one of `names` (all at once), each within one
    // lease of unchanged record version (counted from when it first saw the
    // row held) plus a poll and a round trip.  Each waiter has a connection of
    // its own: two dozen waiters polling every 50 ms through four connections
    // queued for over a second on a loaded machine.
    void expect_taken_within_a_lease(const std::vector<std::string>& names) {
        if (names.empty()) return;
        auto o = cheap_options(table_);
        o.pool_size = names.size();
        LockClient other(dsn(), o);
        const auto start = Clock::now();
        std::vector<std::future<Clock::duration>> takes;
        for (const auto& name : names) {
            takes.push_back(std::async(std::launch::async, [&other, name] {
                auto first_seen = Clock::now();
                bool seen = false;
                AcquireOptions ao;
                ao.observer = [&](const LockObservation& row) {
                    if (row.held && !seen) first_seen = Clock::now();
                    seen = seen || row.held;
                };
                other.acquire(name, ao).release();
                return Clock::now() - first_seen;
            }));
        }
        Clock::duration slowest{};
        for (std::size_t k = 0; k < takes.size(); ++k) {
            ASSERT_EQ(takes[k].wait_for(10s), std::future_status::ready) << names[k];
            const auto took = takes[k].get();
            slowest = std::max(slowest, took);
            EXPECT_LT(took, o.timing.lease_duration + 1s) << names[k] << " took " << ms(took) << " ms";
        }
        std::cout << "  " << names.size() << " leases left behind taken over in "
                  << ms(Clock::now() - start) << " ms (slowest " << ms(slowest) << " ms)\n";
    }

    int random(int below) { return std::uniform_int_distribution<int>(0, below - 1)(rng_); }

    Admin admin_;
    std::size_t threads_ = 0;
    int backends_ = 0;
    std::mt19937 rng_;
};

// (a) A client holding locks is destroyed without releasing them: the
// destructor releases them (documented), so the rows are gone at once and
// the handles report client_closed.
TEST_F(Lifecycle, LockClientWithHeldLocks) {
    take_baseline();
    Destroyer d("LockClient holding 1-3 locks");
    std::size_t rss_100 = 0, rss_1000 = 0;
    auto opts = cheap_options(table_);
    // Each client opens its connections afresh: on a loaded machine the server
    // can take longer than 2 s to answer one, which is not what this test is about.
    opts.connect_timeout = 5s;
    // The locks must still be held when their client is destroyed: a 700 ms
    // renew deadline lapsed through the load alone while the next lock was
    // being acquired (and the handles then rightly reported deadline_passed).
    opts.timing = loaded_timing();
    for (int i = 0; i < kIterations; ++i) {
        auto client = std::make_unique<LockClient>(dsn(), opts);
        std::vector<Lock> locks;
        const int n = 1 + i % 3;
        for (int k = 0; k < n; ++k) locks.push_back(client->acquire("held-" + std::to_string(k)));
        d.destroy(client, "LockClient with held locks");
        for (const auto& l : locks) {
            EXPECT_TRUE(l.is_released()) << l.name();
            EXPECT_EQ(l.loss_cause(), LossCause::client_closed) << l.name();
        }
        locks.clear();  // the handles outlive their client; dropping them does nothing
        ASSERT_EQ(admin_.held_rows(table_), 0)
            << "iteration " << i << ": a destroyed client left a row held";
        if (i == 99) rss_100 = rss_kib();
        if (i == kIterations - 1) rss_1000 = rss_kib();
        if ((i + 1) % kBatch == 0) {
            expect_baseline("after " + std::to_string(i + 1) + " clients");
            // Another client takes every name at once.
            LockClient other(dsn(), opts);
            for (int k = 0; k < 3; ++k) other.try_acquire("held-" + std::to_string(k)).release();
        }
    }
    expect_baseline("at the end");
    const long growth_kib = static_cast<long>(rss_1000) - static_cast<long>(rss_100);
    std::cout << "  RSS " << rss_100 / 1024 << " MiB after 100 clients, " << rss_1000 / 1024
              << " MiB after 1000 (" << growth_kib << " KiB growth)\n";
#ifndef PGELECT_TEST_ASAN
    // ASan's quarantine holds freed memory back, so the bound means nothing there.
    EXPECT_LT(growth_kib, 20 * 1024) << "RSS grew by " << growth_kib << " KiB over 900 clients";
#endif
}

// (b) Electors destroyed at random points of their campaign against a group
// another client holds, and electors destroyed right after winning a free
// group or after leading through a renewal.  Most share one LockClient per
// batch (destroying a client that listens for releases costs up to 100 ms:
// its LISTEN loop wakes every 100 ms); every tenth has its own.
TEST_F(Lifecycle, ElectorMidCampaignAndLeading) {
    auto opts = cheap_options(table_);
    // A leader whose renew deadline passes (on a loaded machine, 700 ms go by
    // quickly) has lost its lease and rightly leaves the row to expire, which
    // is not what this test looks for: a renew deadline of seconds keeps every
    // term alive until the elector is destroyed.  Nobody waits out a lease here.
    opts.timing.lease_duration = 5s;
    opts.timing.renew_deadline = 4s;
    // Counters outlive the clients whose renewal thread bumps them.
    std::atomic<int> holder_renewals{0};
    LockClient holder(dsn(), opts);
    holder.renewal_finished.connect([&](const RenewalReport& r) {
        if (r.ok) ++holder_renewals;
    });
    Lock busy = holder.acquire("busy", AcquireOptions{.keep_on_release = true});
    // The holder's renewal connection is open from its first renewal on.
    ASSERT_TRUE(eventually([&] { return holder_renewals.load() > 0; }));
    take_baseline();

    Destroyer de("Elector"), dc("LockClient of electors");
    int modes[5] = {};
    std::unique_ptr<LockClient> shared;
    for (int i = 0; i < kIterations; ++i) {
        // 0: right after start(); 1: after it saw the holder (polling);
        // 2: after a random pause; 3: right after becoming leader of a free
        // group; 4 (every 50th): leading through at least one renewal.
        const int mode = i % 50 == 49 ? 4 : random(4);
        ++modes[mode];
        const bool own_client = i % 10 == 0;
        if (!shared) shared = std::make_unique<LockClient>(dsn(), opts);
        auto own = own_client ? std::make_unique<LockClient>(dsn(), opts) : nullptr;
        LockClient& client = own_client ? *own : *shared;
        ElectorOptions eo;
        eo.group = mode >= 3 ? "free" : "busy";
        eo.max_backoff = 200ms;
        auto elector = std::make_unique<Elector>(client, eo);
        std::atomic<bool> saw_holder{false};
        auto renewals = std::make_shared<std::atomic<int>>(0);
        elector->leader_changed.connect([&](const std::optional<LeaderInfo>& l) {
            if (l && l->identity == holder.owner()) saw_holder = true;
        });
        auto counter = client.renewal_finished.connect([renewals](const RenewalReport& r) {
            if (r.ok) ++*renewals;
        });
        std::string ended;  // how the last term ended, written on the elector's thread
        elector->lost_leadership.connect([&](const LossInfo& l) {
            ended = std::string(to_string(l.reason)) + ": " + l.message;
        });
        elector->start();
        switch (mode) {
            case 0:
                break;
            case 1:
                ASSERT_TRUE(eventually([&] { return saw_holder.load(); }, 10s, 1ms));
                break;
            case 2:
                std::this_thread::sleep_for(std::chrono::milliseconds(random(20)));
                break;
            case 3:
                ASSERT_TRUE(elector->wait_for_leadership(10s)) << "iteration " << i;
                break;
            case 4:
                ASSERT_TRUE(elector->wait_for_leadership(10s)) << "iteration " << i;
                ASSERT_TRUE(eventually([&] { return renewals->load() > 0; }, 10s, 2ms));
                break;
        }
        de.destroy(elector, "Elector");
        counter.disconnect();
        if (own) dc.destroy(own, "LockClient of an elector");
        if (mode >= 3) {
            ASSERT_FALSE(admin_.row_held(table_, "free"))
                << "iteration " << i << ": a stopped leader left its lease held (its term ended "
                << (ended.empty() ? "without a signal" : "with " + ended) << ")";
        }
        if ((i + 1) % kBatch == 0) {
            dc.destroy(shared, "LockClient of electors");
            EXPECT_FALSE(busy.is_released()) << busy.loss_reason();
            expect_baseline("after " + std::to_string(i + 1) + " electors");
        }
    }
    std::cout << "  modes: " << modes[0] << " at start, " << modes[1] << " polling, " << modes[2]
              << " after a pause, " << modes[3] << " just elected, " << modes[4] << " leading\n";
    expect_baseline("at the end");
    EXPECT_FALSE(busy.is_released()) << busy.loss_reason();
}

// (c) Services built from a Config, started, then destroyed at once or after
// their groups have a leader.  One group releases on stop; the other does on
// even iterations and is left to expire on odd ones (a fresh name each time,
// so that no service waits out the lease of the one before).
TEST_F(Lifecycle, ElectionServiceStartedThenDestroyed) {
    take_baseline();
    Destroyer d("ElectionService without metrics endpoint"),
        dm("ElectionService with a metrics endpoint");
    std::vector<std::string> expiring;
    for (int i = 0; i < kIterations; ++i) {
        const bool release_b = i % 2 == 0;
        const bool metrics = i % 250 == 0;
        Config cfg;
        cfg.database.dsn = dsn();
        cfg.database.table = table_;
        cfg.database.pool_size = 1;
        cfg.database.statement_timeout = kStatementTimeout;
        cfg.database.create_table = i % 10 == 0;
        cfg.identity = "svc-" + std::to_string(i);
        cfg.defaults = fast_timing();
        const std::string b = release_b ? "svc-b" : "svc-b-" + std::to_string(i);
        cfg.groups = {GroupConfig{"svc-a", "a", fast_timing(), true},
                      GroupConfig{b, "b", fast_timing(), release_b}};
        cfg.metrics.listen = metrics ? "127.0.0.1:0" : "";
        auto service = std::make_unique<ElectionService>(cfg);
        service->start();
        const bool led = random(2) == 0;
        if (led) {
            ASSERT_TRUE(service->elector("svc-a").wait_for_leadership(10s)) << "iteration " << i;
            ASSERT_TRUE(service->elector(b).wait_for_leadership(10s)) << "iteration " << i;
        }
        if (metrics) {
            // civetweb's listening thread polls every 2 s and its shutdown waits for it.
            dm.destroy(service, "ElectionService with metrics", kDestroyBound + 2s);
        } else {
            d.destroy(service, "ElectionService");
        }
        if (!release_b && led) expiring.push_back(b);
        // Nothing this service took is still held, except a lease left to expire.
        ASSERT_EQ(admin_.held_by(table_, cfg.identity, release_b ? "" : b), 0) << "iteration " << i;
        if ((i + 1) % kBatch == 0) {
            // The leases left to expire are free for others within one lease.
            expect_taken_within_a_lease(expiring);
            expiring.clear();
            expect_baseline("after " + std::to_string(i + 1) + " services");
        }
    }
    expect_baseline("at the end");
}

// (d) The same with the database unreachable (a closed local port): every
// connect fails at once.
TEST_F(Lifecycle, DatabaseUnreachable) {
    take_baseline();
    const std::string bad = unreachable_dsn();
    auto opts = cheap_options(table_);
    Destroyer dl("LockClient, database unreachable"), de("Elector, database unreachable"),
        ds("ElectionService, database unreachable");
    QuietLog quiet;
    for (int i = 0; i < kIterations; ++i) {
        auto client = std::make_unique<LockClient>(bad, opts);
        EXPECT_THROW(client->acquire("down-" + std::to_string(i % 3)), UnavailableError);
        if (i % 2 == 0) EXPECT_THROW(client->get("down"), UnavailableError);
        dl.destroy(client, "LockClient (unreachable)");

        client = std::make_unique<LockClient>(bad, opts);
        ElectorOptions eo;
        eo.group = "down";
        eo.max_backoff = 100ms;
        auto elector = std::make_unique<Elector>(*client, eo);
        elector->start();
        if (i % 2 == 1) std::this_thread::sleep_for(std::chrono::milliseconds(random(10)));
        EXPECT_FALSE(elector->is_leader());
        de.destroy(elector, "Elector (unreachable)");
        dl.destroy(client, "LockClient (unreachable)");

        Config cfg;
        cfg.database.dsn = bad;
        cfg.database.table = table_;
        cfg.database.pool_size = 1;
        cfg.database.statement_timeout = kStatementTimeout;
        cfg.database.create_table = i % 2 == 0;
        cfg.defaults = fast_timing();
        cfg.groups = {GroupConfig{"down-a", "", fast_timing(), true}};
        cfg.metrics.listen = "";
        auto service = std::make_unique<ElectionService>(cfg);
        if (cfg.database.create_table) {
            EXPECT_THROW(service->start(), UnavailableError);
        } else {
            service->start();  // the elector keeps retrying
        }
        ds.destroy(service, "ElectionService (unreachable)");
        if ((i + 1) % kBatch == 0) expect_baseline("after " + std::to_string(i + 1) + " rounds");
    }
    expect_baseline("at the end");
}

// (d) Objects alive when the server stops are destroyed while it is down, and
// more are built and destroyed meanwhile.  Once it is back, every row a
// destroyed holder left behind is taken by another client within one lease.
TEST_F(Lifecycle, DatabaseStopped) {
    const auto opts = cheap_options(table_);
    take_baseline();
    Destroyer dl("LockClient, server stopped"), de("Elector, server stopped"),
        ds("ElectionService, server stopped");

    // Ten clients holding two locks each when the server goes away.
    std::vector<std::unique_ptr<LockClient>> clients;
    std::vector<Lock> held;
    std::vector<std::string> names;
    for (int c = 0; c < 10; ++c) {
        clients.push_back(std::make_unique<LockClient>(dsn(), opts));
        for (int k = 0; k < 2; ++k) {
            names.push_back("stopped-" + std::to_string(c) + "-" + std::to_string(k));
            held.push_back(clients.back()->acquire(names.back()));
        }
    }
    std::vector<std::unique_ptr<LockClient>> elector_clients;
    std::vector<std::unique_ptr<Elector>> electors;
    for (int e = 0; e < 6; ++e) {
        elector_clients.push_back(std::make_unique<LockClient>(dsn(), opts));
        ElectorOptions eo;
        eo.group = e < 3 ? "stopped-group-" + std::to_string(e) : "stopped-group-0";
        eo.max_backoff = 100ms;
        electors.push_back(std::make_unique<Elector>(*elector_clients.back(), eo));
        electors.back()->start();
        if (e < 3) ASSERT_TRUE(electors.back()->wait_for_leadership(10s));
        names.push_back(eo.group);
    }
    // The waiting electors' LISTEN connections are up before the server stops
    // (libpqxx 6 leaks the result of a LISTEN that finds its connection broken).
    ASSERT_TRUE(eventually([&] { return admin_.listening() >= 3; }, 10s, 5ms));
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());

    {
        QuietLog quiet;
        admin_.disconnect();
        pg_ctl("stop fast");
        const auto down = Clock::now();
        for (std::size_t e = 0; e < electors.size(); ++e) {
            de.destroy(electors[e], "Elector (server stopped)");
            dl.destroy(elector_clients[e], "LockClient of an elector (server stopped)");
        }
        for (auto& c : clients) dl.destroy(c, "LockClient with held locks (server stopped)");
        for (const auto& l : held) EXPECT_TRUE(l.is_released());
        held.clear();
        for (int i = 0; i < 50; ++i) {
            auto client = std::make_unique<LockClient>(dsn(), opts);
            EXPECT_THROW(client->acquire("while-down"), UnavailableError);
            auto elector =
                std::make_unique<Elector>(*client, ElectorOptions{.group = "while-down"});
            elector->start();
            if (i % 2) std::this_thread::sleep_for(std::chrono::milliseconds(random(10)));
            de.destroy(elector, "Elector (server stopped)");
            dl.destroy(client, "LockClient (server stopped)");
            Config cfg;
            cfg.database.dsn = dsn();
            cfg.database.table = table_;
            cfg.database.pool_size = 1;
            cfg.database.statement_timeout = kStatementTimeout;
            cfg.database.create_table = i % 2 == 0;
            cfg.defaults = fast_timing();
            cfg.groups = {GroupConfig{"while-down", "", fast_timing(), true}};
            cfg.metrics.listen = "";
            auto service = std::make_unique<ElectionService>(cfg);
            if (cfg.database.create_table) {
                EXPECT_THROW(service->start(), UnavailableError);
            } else {
                service->start();
            }
            ds.destroy(service, "ElectionService (server stopped)");
        }
        std::cout << "  the server was down for " << ms(Clock::now() - down) << " ms\n";
        pg_ctl("start");
    }
    expect_baseline("after the restart");

    // Everything a destroyed client held is free for another one within one lease.
    expect_taken_within_a_lease(names);
    EXPECT_EQ(admin_.held_rows(table_), 0);
}

}  // namespace
}  // namespace pgelect::test
