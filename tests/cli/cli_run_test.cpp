// pgelect run: one command per group at a time, and never one that outlives
// its leadership or its pgelect.
#include <regex>

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

    // pgelect run for `identity`, running child.sh in `mode`, with short leases.
    std::unique_ptr<Pgelect> start(const std::string& identity, std::vector<std::string> mode,
                                   std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"run",     "--dsn", dsn(),        "--table", table_,
                                      "--group", "g",     "--identity", identity};
        if (extra.empty()) {
            extra = {"--lease",     "1s",    "--renew-deadline", "700ms",
                     "--heartbeat", "200ms", "--retry",          "100ms"};
        }
        args.insert(args.end(), extra.begin(), extra.end());
        args.insert(args.end(), {"--", "/bin/sh", PGELECT_CLI_CHILD, dir_.path().string()});
        args.insert(args.end(), mode.begin(), mode.end());
        return std::make_unique<Pgelect>(args);
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

    std::string table_ = unique_table("clirun");
    TempDir dir_;
};

TEST_F(CliRunTest, OneCommandAtATimeAndAKilledLeaderLeavesNoOrphan) {
    auto a = start("a", {"work"});
    ASSERT_TRUE(wait_starts(1)) << a->output();
    const Start first = starts().at(0);
    EXPECT_EQ(first.identity, "a");
    EXPECT_GT(first.token, 0);
    auto b = start("b", {"work"});
    ASSERT_TRUE(eventually([&] { return b->err().find("following a") != std::string::npos; }))
        << b->output();
    // Observe for longer than a lease: the follower must not start its command.
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(starts().size(), 1u) << a->output() << b->output();
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
    EXPECT_LT(takeover, 4s) << "lease 1s, retry 100ms";
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

}  // namespace
}  // namespace pgelect::test
