// PostgreSQL at max_connections: while every connection slot is taken, calls
// that need a new connection fail fast with UnavailableError naming the
// cause, a client that already has its connections keeps its lock, and an
// elector keeps retrying and becomes leader once slots are free.  ctest runs
// it on a server of its own with max_connections = 30 (tests/CMakeLists.txt).
#include <algorithm>
#include <iostream>
#include <mutex>
#include <optional>

#include "pgelect/log.hpp"
#include "ports.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

int other_client_backends(pqxx::connection& admin) {
    pqxx::nontransaction tx(admin);
    return tx
        .exec1(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()")[0]
        .as<int>();
}

// Takes every free connection slot of the server and gives them back when
// destroyed (also when an assertion fails on the way).  Its connections carry
// their own application_name, so that the server can be asked when they are gone.
class SlotFiller {
  public:
    static constexpr const char* kApplicationName = "pgelect_slot_filler";

    // Opens connections until the server refuses one; returns its message.
    std::string fill() {
        for (;;) {
            try {
                held_.push_back(std::make_unique<pqxx::connection>(
                    dsn() + " application_name=" + kApplicationName));
            } catch (const pqxx::broken_connection& e) {
                return e.what();
            }
            if (held_.size() > 5000) return "the server never refused a connection";
        }
    }
    void release_all() { held_.clear(); }
    std::size_t size() const { return held_.size(); }

  private:
    std::vector<std::unique_ptr<pqxx::connection>> held_;
};

// Collects what pgelect logs, through the log sink, as "<level>: <message>"
// lines; restores the default sink when done.
class LogCapture {
  public:
    LogCapture() {
        set_log_sink([this](LogLevel level, std::string_view message) {
            std::lock_guard lk(mu_);
            const std::string line = std::string(to_string(level)) + ": " + std::string(message) + "\n";
            text_ += line;
            timed_.emplace_back(std::chrono::steady_clock::now(), line);
        });
    }
    ~LogCapture() { restore(); }
    void restore() { set_log_sink(nullptr); }
    std::string text() const {
        std::lock_guard lk(mu_);
        return text_;
    }
    // The same lines, each with the steady-clock instant it was logged at.
    std::string timed_text(std::chrono::steady_clock::time_point origin) const {
        std::lock_guard lk(mu_);
        std::string out;
        for (const auto& [at, line] : timed_) {
            out += "    " +
                   std::to_string(
                       std::chrono::duration_cast<std::chrono::milliseconds>(at - origin).count()) +
                   " ms: " + line;
        }
        return out;
    }

  private:
    mutable std::mutex mu_;
    std::string text_;
    std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> timed_;
};

// Backends of the slot filler that have not exited yet.  A closed connection
// frees its slot only once its backend process has exited, which takes a while
// for hundreds of them on a loaded machine.
int filler_backends(pqxx::connection& admin) {
    pqxx::nontransaction tx(admin);
    return tx
        .exec_params1("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                      SlotFiller::kApplicationName)[0]
        .as<int>();
}

long ms_since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

TEST(MaxConnections, ClientsFailFastAndAnElectorLeadsOnceSlotsAreFree) {
    const std::string table = unique_table("maxconn");
    // Leases that fit a loaded machine while hundreds of backends start and
    // exit: the kept lock must survive the whole episode on its renewals, and
    // with fast_timing()'s 700 ms renew deadline it can lose to the load alone.
    LeaseTiming timing = fast_timing();
    timing.lease_duration = 10s;
    timing.renew_deadline = 8s;
    timing.heartbeat_interval = 500ms;
    auto opts = options_for(table, timing);
    opts.connect_timeout = 2s;
    opts.pool_size = 1;
    LockClient(dsn(), opts).create_table();

    // A holder whose connections are open before the server fills up.
    std::atomic<int> renewals{0};  // outlives the holder's renewal thread
    std::mutex failed_mu;
    std::string failed_renewals;  // "<ms since start> <error> <elapsed ms>" per failed renewal
    const auto test_start = Clock::now();
    LockClient holder(dsn(), opts);
    holder.renewal_finished.connect([&](const RenewalReport& r) {
        if (r.ok) {
            ++renewals;
            return;
        }
        std::lock_guard lk(failed_mu);
        failed_renewals += "    " + std::to_string(ms_since(test_start)) + " ms: " +
                           std::string(r.error ? to_string(*r.error) : "unknown") + " after " +
                           std::to_string(
                               std::chrono::duration_cast<std::chrono::milliseconds>(r.elapsed).count()) +
                           " ms\n";
    });
    auto renewal_failures = [&] {
        std::lock_guard lk(failed_mu);
        return failed_renewals;
    };
    Lock kept = holder.acquire("kept");
    ASSERT_TRUE(eventually([&] { return renewals.load() > 0; }));

    // Opened before the server fills up, to watch the slots come free again.
    pqxx::connection admin(dsn());
    // Connections of earlier tests may still be on their way out.
    ASSERT_TRUE(eventually([&] { return other_client_backends(admin) <= 2; }, 15s, 10ms))
        << other_client_backends(admin) << " other connections";

    SlotFiller filler;
    const auto fill_start = Clock::now();
    const std::string refusal = filler.fill();
    std::cout << "  the server refused connection " << filler.size() + 1 << " after "
              << ms_since(fill_start) << " ms: " << refusal;
    const std::string full = "connection to server at \"127.0.0.1\", port " +
                             std::to_string(server_port()) +
                             " failed: FATAL:  sorry, too many clients already";
    ASSERT_EQ(refusal, full + "\n");

    // Calls that need a connection fail at once (well within connect_timeout).
    LockClient client(dsn(), opts);  // construction never connects
    const std::string cannot =
        ": cannot connect to PostgreSQL (dbname=postgres host=127.0.0.1 port=" +
        std::to_string(server_port()) + " user=postgres): " + full;
    auto unavailable = [&](const std::function<void()>& fn) -> std::string {
        const auto start = Clock::now();
        try {
            fn();
            ADD_FAILURE() << "did not throw";
        } catch (const UnavailableError& e) {
            EXPECT_EQ(e.kind(), ErrorKind::unavailable);
            EXPECT_LT(Clock::now() - start, opts.connect_timeout) << e.what();
            return e.what();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "threw another exception: " << e.what();
        }
        return "";
    };
    EXPECT_EQ(unavailable([&] { client.acquire("mc"); }),
              "acquire lock \"mc\" on table " + table + cannot);
    EXPECT_EQ(unavailable([&] { client.try_acquire("mc"); }),
              "acquire lock \"mc\" on table " + table + cannot);
    EXPECT_EQ(unavailable([&] { client.get("mc"); }),
              "read lock \"mc\" on table " + table + cannot);
    EXPECT_EQ(unavailable([&] { client.try_create_table(); }),
              "create lock table " + table + " if missing" + cannot);

    // An elector started now keeps retrying (and says why) ...
    LogCapture log;
    LockClient elector_client(dsn(), opts);
    // The instants at which its acquisitions failed or succeeded.
    std::mutex attempts_mu;
    std::vector<Clock::time_point> failed_attempts;
    std::optional<Clock::time_point> acquired_at;
    elector_client.acquire_attempted.connect([&](const std::string&, AttemptResult result) {
        std::lock_guard lk(attempts_mu);
        if (result == AttemptResult::error) failed_attempts.push_back(Clock::now());
        if (result == AttemptResult::acquired && !acquired_at) acquired_at = Clock::now();
    });
    ElectorOptions eo;
    eo.group = "mc-group";
    eo.max_backoff = 300ms;
    Elector elector(elector_client, eo);
    elector.start();
    // Ten attempts within 20 s while refused: a backoff capped at 300 ms
    // makes them in a few seconds; an uncapped one (100 ms doubling, half
    // to full of it as pause) would need over 25 s for its first nine pauses.
    auto failures = [&] {
        std::lock_guard lk(attempts_mu);
        return failed_attempts.size();
    };
    const auto refusing_since = Clock::now();
    ASSERT_TRUE(eventually([&] { return failures() >= 10; }, 20s))
        << failures() << " failed attempts in " << ms_since(refusing_since) << " ms";
    EXPECT_FALSE(elector.is_leader());
    // ... while the holder, whose connections are open, keeps renewing its lock.
    const int before = renewals.load();
    ASSERT_TRUE(eventually([&] { return renewals.load() >= before + 2; }, 5s));
    EXPECT_FALSE(kept.is_released()) << kept.loss_reason() << "\nfailed renewals:\n"
                                     << renewal_failures();

    const std::size_t filled = filler.size();
    const auto released = Clock::now();
    filler.release_all();
    // The slots are free once the filler's backends have exited; until then
    // the server may still refuse the elector.
    ASSERT_TRUE(eventually([&] { return filler_backends(admin) == 0; }, 30s, 10ms))
        << filler_backends(admin) << " backends of the slot filler still there";
    const auto freed = Clock::now();
    const long exiting = ms_since(released);
    ASSERT_TRUE(elector.wait_for_leadership(10s));
    const long took = ms_since(freed);
    elector.stop();
    // The backoff is capped: an attempt fails at once while the server refuses
    // connections, or after at most connect_timeout while it is too busy to
    // answer (hundreds of backends exiting), and the next one starts at most
    // max_backoff later.  So consecutive failures, and the last failure and the
    // success, are never further apart than connect_timeout + max_backoff,
    // plus a second for the acquisition statement and scheduling on a loaded
    // machine.  An uncapped backoff, doubled through a dozen refusals, pauses
    // for minutes.
    {
        std::lock_guard lk(attempts_mu);
        ASSERT_GE(failed_attempts.size(), 2u);
        ASSERT_TRUE(acquired_at.has_value());
        const auto bound = opts.connect_timeout + eo.max_backoff + 1s;
        std::vector<Clock::time_point> ends = failed_attempts;
        ends.push_back(*acquired_at);
        for (std::size_t i = 1; i < ends.size(); ++i) {
            EXPECT_LT(ends[i] - ends[i - 1], bound)
                << "attempt " << i << " ended "
                << std::chrono::duration_cast<std::chrono::milliseconds>(ends[i] - ends[i - 1]).count()
                << " ms after the one before";
        }
        // Counted from the moment the slots are free: a refusal in flight, the
        // capped pause, then connecting and one acquisition.
        EXPECT_LT(std::chrono::milliseconds(took), opts.connect_timeout + eo.max_backoff + 500ms)
            << took << " ms";
        std::cout << "  " << failed_attempts.size() << " failed attempts; the success came "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(*acquired_at -
                                                                            failed_attempts.back())
                         .count()
                  << " ms after the last failure\n";
    }
    log.restore();
    const std::string logged = log.text();
    const std::string line =
        "warning: campaign for \"mc-group\": acquire lock \"mc-group\" on table " + table + cannot +
        "\n";
    EXPECT_NE(logged.find(line), std::string::npos) << logged;
    std::cout << "  the elector logged " << std::count(logged.begin(), logged.end(), '\n')
              << " line(s) and led " << took << " ms after the slots were free (their "
              << filled << " backends took " << exiting
              << " ms to exit); what it logged, counted from when they had exited:\n"
              << log.timed_text(freed);

    // Nothing is left half-held: the failed acquisitions left no row, and the
    // client works now.
    EXPECT_THROW(client.get("mc"), NotFoundError);
    client.acquire("mc").release();
    EXPECT_THROW(client.get("mc"), NotFoundError);
    EXPECT_FALSE(kept.is_released()) << kept.loss_reason() << "\nfailed renewals:\n"
                                     << renewal_failures();
    kept.release();
    client.drop_table();
}

}  // namespace
}  // namespace pgelect::test
