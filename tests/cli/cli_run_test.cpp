// pgelect run: one command per group at a time, and never one that outlives
// its leadership or its pgelect.
#include <poll.h>

#include <atomic>
#include <mutex>
#include <regex>
#include <thread>

#include "../metrics/scrape.hpp"
#include "cli_process.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

struct Start {
    pid_t pid = 0;
    std::int64_t token = 0;
    std::string identity;
};

class CliRunTest : public ::testing::Test {
  protected:
    void SetUp() override { LockClient(dsn(), options_for(table_)).create_table(); }
    void TearDown() override {
        try {
            LockClient(dsn(), options_for(table_)).drop_table();
        } catch (...) {
        }
    }

    // pgelect run for `identity`, running child.sh in `mode`, with short leases
    // (3 s unless `extra` gives the timing).
    std::unique_ptr<Pgelect> start(const std::string& identity, std::vector<std::string> mode,
                                   std::vector<std::string> extra = {}, int stderr_fd = -1) {
        std::vector<std::string> args{"run",     "--dsn", dsn(),        "--table", table_,
                                      "--group", "g",     "--identity", identity};
        if (extra.empty()) {
            // A 3 s lease: with 1 s, a loaded machine cost the leader its
            // lease before the follower had even seen it.
            extra = {"--lease",     "3s",    "--renew-deadline", "2s",
                     "--heartbeat", "300ms", "--retry",          "100ms"};
        }
        args.insert(args.end(), extra.begin(), extra.end());
        args.insert(args.end(), {"--", "/bin/sh", PGELECT_CLI_CHILD, dir_.path().string()});
        args.insert(args.end(), mode.begin(), mode.end());
        return std::make_unique<Pgelect>(args, std::vector<std::string>{}, stderr_fd);
    }

    std::vector<Start> starts() const {
        std::vector<Start> out;
        std::istringstream in(read_file(dir_ / "started"));
        Start s;
        while (in >> s.pid >> s.token >> s.identity) out.push_back(s);
        return out;
    }
    bool wait_starts(std::size_t n, std::chrono::milliseconds timeout = 10s) const {
        return eventually([&] { return starts().size() >= n; }, timeout);
    }
    std::string events() const { return read_file(dir_ / "events"); }

    // The times (date +%s%N) the "stamp" commands of `identity` wrote, in order.
    // Lines cut short (a `date` killed with its group, a line still being
    // written) are skipped.
    std::vector<long long> stamps_of(const std::string& identity) const {
        const std::string text = read_file(dir_ / "stamps");
        std::vector<long long> out;
        std::size_t start = 0;
        for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
            std::istringstream line(text.substr(start, end - start));
            std::string who;
            long long ns;
            if (line >> who >> ns && who == identity) out.push_back(ns);
        }
        return out;
    }

    // The commands' own output, not pgelect's log: every stamp of `before`'s
    // command precedes every stamp of `after`'s.
    void expect_stamps_in_order(const std::string& before, const std::string& after) const {
        const auto old_stamps = stamps_of(before);
        const auto new_stamps = stamps_of(after);
        ASSERT_FALSE(old_stamps.empty()) << before << "'s command wrote no stamp";
        ASSERT_FALSE(new_stamps.empty()) << after << "'s command wrote no stamp";
        EXPECT_LT(old_stamps.back(), new_stamps.front())
            << "the command of " << before << " wrote "
            << (old_stamps.back() - new_stamps.front()) / 1000000 << " ms after the command of "
            << after << " had started writing";
    }

    std::string table_ = unique_table("clirun");
    TempDir dir_;
};

TEST_F(CliRunTest, OneCommandAtATimeAndAKilledLeaderLeavesNoOrphan) {
    auto a = start("a", {"stamp"});
    ASSERT_TRUE(wait_starts(1)) << a->output();
    const Start first = starts().at(0);
    EXPECT_EQ(first.identity, "a");
    EXPECT_GT(first.token, 0);
    auto b = start("b", {"stamp"});
    ASSERT_TRUE(eventually([&] { return b->err().find("following a") != std::string::npos; }))
        << b->output();
    // Observe for longer than a lease: the follower must not start its command.
    std::this_thread::sleep_for(3500ms);
    EXPECT_EQ(starts().size(), 1u) << a->output() << b->output();
    EXPECT_TRUE(stamps_of("b").empty()) << "the follower's command ran";
    EXPECT_NE(a->out().find("fencing token " + std::to_string(first.token)), std::string::npos)
        << a->output();

    a->signal(SIGKILL);
    const auto killed_at = Clock::now();
    ASSERT_EQ(a->wait_exit(5s), 128 + SIGKILL);
    EXPECT_TRUE(eventually([&] { return !process_alive(first.pid); }, 2s))
        << "the command of a SIGKILLed pgelect is still running";
    ASSERT_TRUE(wait_starts(2)) << b->output();
    const auto takeover = Clock::now() - killed_at;
    const Start second = starts().at(1);
    EXPECT_EQ(second.identity, "b");
    EXPECT_GT(second.token, first.token);
    EXPECT_LT(takeover, 6s) << "lease 3s, retry 100ms";
    ASSERT_TRUE(eventually([&] { return !stamps_of("b").empty(); }, 5s)) << b->output();
    expect_stamps_in_order("a", "b");
    EXPECT_EQ(b->exit_code(), std::nullopt) << b->output();
}

TEST_F(CliRunTest, KilledPgelectTakesGrandchildrenAlong) {
    auto a = start("a", {"grandchild"});
    ASSERT_TRUE(eventually([&] { return !read_file(dir_ / "grandchild").empty(); })) << a->output();
    const pid_t grandchild = std::stoi(read_file(dir_ / "grandchild"));
    ASSERT_TRUE(process_alive(grandchild));
    a->signal(SIGKILL);
    ASSERT_EQ(a->wait_exit(5s), 128 + SIGKILL);
    EXPECT_TRUE(eventually([&] { return !process_alive(grandchild); }, 2s))
        << "a grandchild outlived its SIGKILLed pgelect";
    const pid_t child = starts().at(0).pid;
    EXPECT_TRUE(eventually([&] { return !process_alive(child); }, 2s))
        << "the command outlived its SIGKILLed pgelect";
}

TEST_F(CliRunTest, CommandExitResignsAndTheFollowerTakesOverWithinASecond) {
    // A lease far longer than a second: a takeover within one proves the handoff.
    const std::vector<std::string> slow{"--lease",     "10s", "--renew-deadline", "6s",
                                        "--heartbeat", "1s",  "--retry",          "5s"};
    auto a = start("a", {"exit", "7", "1.5"}, slow);
    ASSERT_TRUE(wait_starts(1)) << a->output();
    auto b = start("b", {"work"}, slow);
    ASSERT_TRUE(eventually([&] { return b->err().find("following a") != std::string::npos; }))
        << b->output();
    ASSERT_EQ(a->wait_exit(10s), 7) << a->output();
    const auto exited_at = Clock::now();
    ASSERT_TRUE(wait_starts(2, 5s)) << b->output();
    EXPECT_LT(Clock::now() - exited_at, 1s) << b->output();
    EXPECT_EQ(starts().at(1).identity, "b");
}

TEST_F(CliRunTest, ExitStatusIsTheCommands) {
    auto a = start("a", {"exit", "0", "0"});
    EXPECT_EQ(a->wait_exit(10s), 0) << a->output();
    auto b = start("b", {"exit", "42", "0"});
    EXPECT_EQ(b->wait_exit(10s), 42) << b->output();
    Pgelect killed({"run", "--dsn", dsn(), "--table", table_, "--group", "g", "--", "/bin/sh", "-c",
                    "kill -USR1 $$"});
    EXPECT_EQ(killed.wait_exit(10s), 128 + SIGUSR1) << killed.output();
    Pgelect missing(
        {"run", "--dsn", dsn(), "--table", table_, "--group", "g", "--", "/no/such/command"});
    EXPECT_EQ(missing.wait_exit(10s), 127) << missing.output();
}

TEST_F(CliRunTest, SigtermIsForwardedThenPgelectResignsAndExits) {
    auto a = start("a", {"work"});
    ASSERT_TRUE(wait_starts(1)) << a->output();
    const Start first = starts().at(0);
    a->signal(SIGTERM);
    EXPECT_EQ(a->wait_exit(5s), 0) << a->output();  // the command's own status (its trap exits 0)
    EXPECT_NE(events().find("term " + std::to_string(first.pid)), std::string::npos) << a->output();
    EXPECT_FALSE(process_alive(first.pid));
    LockClient client(dsn(), options_for(table_));
    EXPECT_FALSE(client.get("g").held()) << "pgelect did not resign";

    // SIGINT too: the command (which only traps SIGTERM) dies of it.
    auto b = start("b", {"work"});
    ASSERT_TRUE(wait_starts(2)) << b->output();
    b->signal(SIGINT);
    EXPECT_EQ(b->wait_exit(5s), 128 + SIGINT) << b->output();
    EXPECT_FALSE(process_alive(starts().at(1).pid));

    // A follower just stops.
    auto leader = start("l", {"work"});
    ASSERT_TRUE(wait_starts(3)) << leader->output();
    auto follower = start("f", {"work"});
    ASSERT_TRUE(eventually([&] {
        return follower->err().find("following l") != std::string::npos;
    })) << follower->output();
    follower->signal(SIGINT);
    EXPECT_EQ(follower->wait_exit(5s), 0) << follower->output();
    EXPECT_EQ(leader->exit_code(), std::nullopt);
}

TEST_F(CliRunTest, MetricsListenServesThisElectorsMetrics) {
    const std::vector<std::string> timing{"--lease",     "1s",    "--renew-deadline", "700ms",
                                          "--heartbeat", "200ms", "--retry",          "100ms"};
    auto with_metrics = [&](const std::string& listen) {
        auto t = timing;
        t.insert(t.end(), {"--metrics-listen", listen});
        return t;
    };
    auto a = start("a", {"work"}, with_metrics("127.0.0.1:0"));
    ASSERT_TRUE(wait_starts(1)) << a->output();
    std::smatch m;
    const std::string err = a->err();
    ASSERT_TRUE(
        std::regex_search(err, m, std::regex(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)")))
        << err;
    const int port = std::stoi(m[1]);
    std::string body;
    EXPECT_TRUE(eventually(
        [&] {
            body = http_get(port, "/metrics").body;
            return body.find("pgelect_is_leader{group=\"g\"} 1") != std::string::npos;
        },
        5s))
        << body;
    // A port in use is a plain failure (exit 1), not a database one.
    auto b = start("b", {"work"}, with_metrics("127.0.0.1:" + std::to_string(port)));
    EXPECT_EQ(b->wait_exit(10s), 1) << b->output();
    EXPECT_NE(b->err().find("--metrics-listen"), std::string::npos) << b->output();
}

TEST_F(CliRunTest, SignalsIgnoredAtStartStayIgnored) {
    // nohup: a hangup must not stop pgelect nor its command.
    Pgelect a({"run", "--dsn", dsn(), "--table", table_, "--group", "g", "--identity", "a", "--",
               "/bin/sh", PGELECT_CLI_CHILD, dir_.path().string(), "work"},
              {"/usr/bin/nohup"});
    ASSERT_TRUE(wait_starts(1)) << a.output();
    a.signal(SIGHUP);
    std::this_thread::sleep_for(300ms);  // an observation window: nothing may happen
    EXPECT_EQ(a.exit_code(), std::nullopt) << a.output();
    EXPECT_TRUE(process_alive(starts().at(0).pid));
    EXPECT_EQ(a.err().find("SIGHUP"), std::string::npos) << a.output();
    a.signal(SIGTERM);
    EXPECT_EQ(a.wait_exit(5s), 0) << a.output();
}

TEST_F(CliRunTest, LostLeadershipStopsTheCommandAndItRunsAgainWhenReelected) {
    auto a = start("a", {"work"});
    ASSERT_TRUE(wait_starts(1)) << a->output();
    const Start first = starts().at(0);
    sql("UPDATE " + table_ + " SET fencing_token = fencing_token + 1000");
    ASSERT_TRUE(eventually(
        [&] { return events().find("term " + std::to_string(first.pid)) != std::string::npos; },
        3s))
        << a->output();
    EXPECT_TRUE(eventually([&] { return !process_alive(first.pid); }, 3s));
    EXPECT_TRUE(eventually(
        [&] { return a->err().find("LOST leadership") != std::string::npos; }, 3s))
        << a->output();
    EXPECT_EQ(a->exit_code(), std::nullopt) << "pgelect keeps campaigning after a loss";
    // The stale row is taken over once its lease runs out, by the same campaigner.
    ASSERT_TRUE(wait_starts(2)) << a->output();
    EXPECT_NE(starts().at(1).token, first.token);
}

TEST_F(CliRunTest, CommandIgnoringSigtermIsKilledAfterTheGracePeriod) {
    std::vector<std::string> timing{"--lease",     "1s",    "--renew-deadline", "700ms",
                                    "--heartbeat", "200ms", "--retry",          "100ms",
                                    "--grace",     "1500ms"};
    auto a = start("a", {"ignore-term"}, timing);
    ASSERT_TRUE(wait_starts(1)) << a->output();
    const Start first = starts().at(0);
    sql("UPDATE " + table_ + " SET fencing_token = fencing_token + 1000");
    ASSERT_TRUE(eventually([&] { return !events().empty(); }, 3s)) << a->output();
    const auto termed_at = Clock::now();
    EXPECT_TRUE(process_alive(first.pid)) << "SIGKILL came before the grace period";
    ASSERT_TRUE(eventually([&] { return !process_alive(first.pid); }, 5s)) << a->output();
    const auto took = Clock::now() - termed_at;
    EXPECT_GT(took, 1000ms);
    EXPECT_LT(took, 3000ms);
    EXPECT_NE(a->err().find("SIGKILL"), std::string::npos) << a->output();
}

// Short enough for a quick test, long enough for a loaded 2-core machine: the
// guard stops the command at most renew deadline + grace (1.8s) after the last
// renewal; a successor starts no earlier than the lease (3s) after it.
const std::vector<std::string> kGuardTiming{"--lease",     "3s",    "--renew-deadline", "1500ms",
                                            "--heartbeat", "300ms", "--retry",          "100ms",
                                            "--grace",     "300ms"};

TEST_F(CliRunTest, StoppedPgelectsCommandEndsBeforeTheNextLeadersStarts) {
    auto a = start("a", {"stamp"}, kGuardTiming);
    ASSERT_TRUE(wait_starts(1)) << a->output();
    const Start first = starts().at(0);
    auto b = start("b", {"stamp"}, kGuardTiming);
    ASSERT_TRUE(eventually([&] { return b->err().find("following a") != std::string::npos; }))
        << b->output();
    ASSERT_TRUE(eventually([&] { return !stamps_of("a").empty(); })) << a->output();

    // Stopped: no thread of pgelect runs, neither renewals nor its deadline timer.
    a->signal(SIGSTOP);
    ASSERT_TRUE(wait_starts(2, 15s)) << b->output();
    EXPECT_EQ(starts().at(1).identity, "b");
    EXPECT_TRUE(eventually([&] { return !process_alive(first.pid); }, 5s))
        << "the command of a stopped pgelect kept running after its lease";
    EXPECT_NE(events().find("term " + std::to_string(first.pid)), std::string::npos)
        << "the command was not given SIGTERM first";
    ASSERT_TRUE(eventually([&] { return !stamps_of("b").empty(); }, 5s)) << b->output();
    expect_stamps_in_order("a", "b");

    a->signal(SIGCONT);
    a->signal(SIGKILL);
    EXPECT_EQ(a->wait_exit(5s), 128 + SIGKILL);
    EXPECT_EQ(b->exit_code(), std::nullopt) << b->output();
}

TEST_F(CliRunTest, FullStderrPipeDoesNotDelayStoppingTheCommand) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    struct Closer {
        int (&fds)[2];
        ~Closer() {
            ::close(fds[0]);
            ::close(fds[1]);
        }
    } closer{pipe_fds};
    // Read pgelect's stderr until it leads, then leave the pipe full and unread.
    std::atomic<bool> draining{true};
    std::mutex drained_mu;
    std::string drained;
    std::thread drainer([&] {
        char buf[4096];
        while (draining) {
            struct pollfd p {pipe_fds[0], POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
            if (n <= 0) break;
            std::lock_guard lk(drained_mu);
            drained.append(buf, static_cast<std::size_t>(n));
        }
    });
    auto a_err = [&] {
        std::lock_guard lk(drained_mu);
        return drained;
    };
    auto a = start("a", {"stamp"}, kGuardTiming, pipe_fds[1]);
    ASSERT_TRUE(wait_starts(1)) << a->output() << a_err();
    const Start first = starts().at(0);
    auto b = start("b", {"stamp"}, kGuardTiming);
    ASSERT_TRUE(eventually([&] { return b->err().find("following a") != std::string::npos; }))
        << b->output();
    ASSERT_TRUE(eventually([&] { return !stamps_of("a").empty(); })) << a->output();
    draining = false;
    drainer.join();
    // Filled through a second, non-blocking open file description of the pipe:
    // pgelect's own stderr stays blocking.
    const int filler = ::open(("/proc/self/fd/" + std::to_string(pipe_fds[1])).c_str(),
                              O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(filler, 0) << std::strerror(errno);
    const std::string chunk(4096, 'x');
    while (::write(filler, chunk.data(), chunk.size()) > 0) {
    }
    while (::write(filler, "x", 1) > 0) {
    }
    ::close(filler);

    // The lease is taken away: pgelect notices at its next renewal and must
    // stop its command although every line it writes to stderr now blocks.
    sql("UPDATE " + table_ + " SET fencing_token = fencing_token + 1000");
    EXPECT_TRUE(eventually([&] { return !process_alive(first.pid); }, 5s))
        << "the command kept running while pgelect's stderr was full\n" << a_err();
    EXPECT_NE(events().find("term " + std::to_string(first.pid)), std::string::npos);
    ASSERT_TRUE(wait_starts(2, 15s)) << b->output();
    EXPECT_EQ(starts().at(1).identity, "b");
    ASSERT_TRUE(eventually([&] { return !stamps_of("b").empty(); }, 5s)) << b->output();
    expect_stamps_in_order("a", "b");

    a->signal(SIGKILL);
    EXPECT_EQ(a->wait_exit(5s), 128 + SIGKILL);
}

// The guard's deadline follows renewals: without heartbeats there is none,
// so `--heartbeat 0` is refused before anything runs.  Timings that leave the
// command running into a successor's term, or let the guard stop it before
// the first renewal, are warned about; the defaults are not.
TEST_F(CliRunTest, TimingsWithoutAMarginAreWarnedAndNoHeartbeatIsRefused) {
    auto none = start("a", {"exit", "0", "0"},
                      {"--lease", "3s", "--renew-deadline", "2s", "--heartbeat", "0"});
    EXPECT_EQ(none->wait_exit(10s), 2) << none->output();
    EXPECT_NE(none->err().find("--heartbeat must be > 0"), std::string::npos) << none->output();
    EXPECT_TRUE(starts().empty()) << "the command ran without renewals";

    auto tight = start("b", {"exit", "0", "0"},
                       {"--lease", "3s", "--renew-deadline", "2500ms", "--heartbeat", "300ms",
                        "--retry", "100ms", "--grace", "1s"});
    EXPECT_EQ(tight->wait_exit(10s), 0) << tight->output();
    EXPECT_NE(tight->err().find("warning: renew deadline 2500ms + grace 1s leaves nothing of the "
                                "lease 3s (less than a tenth)"),
              std::string::npos)
        << tight->output();

    auto early = start("c", {"exit", "0", "0"},
                       {"--lease", "3s", "--renew-deadline", "900ms", "--heartbeat", "300ms",
                        "--retry", "100ms", "--grace", "1s"});
    EXPECT_EQ(early->wait_exit(10s), 0) << early->output();
    EXPECT_NE(early->err().find("warning: renew deadline 900ms is not above three heartbeats (300ms)"),
              std::string::npos)
        << early->output();

    auto defaults = start("d", {"exit", "0", "0"}, {"--retry", "100ms"});
    EXPECT_EQ(defaults->wait_exit(20s), 0) << defaults->output();
    EXPECT_EQ(defaults->err().find("warning:"), std::string::npos) << defaults->output();
    EXPECT_EQ(starts().size(), 3u);
}

}  // namespace
}  // namespace pgelect::test
