// The split-brain checker: 5 candidate processes campaign for one group with
// 1 s leases while faults are injected one at a time for 60 s.  Afterwards no
// two leadership intervals may overlap, fencing tokens must increase from
// interval to interval, and after every fault a leader must be back within
// lease + retry + 0.5 s.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "test_env.hpp"

extern char** environ;

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kLease = 1000ms;
constexpr auto kRetry = 100ms;

long long now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

struct Interval {
    int node;
    std::int64_t token;
    long long start;
    long long end;  // LLONG_MAX while open
};

class Node {
public:
    Node(int index, std::string table, std::string dir) : index_(index), table_(std::move(table)) {
        file_ = dir + "/node-" + std::to_string(index) + ".log";
    }
    std::string identity() const { return "node-" + std::to_string(index_); }
    void spawn() {
        std::vector<std::string> env_strings;
        for (char** e = environ; *e; ++e) {
            if (std::string(*e).rfind("PGAPPNAME=", 0) != 0) env_strings.emplace_back(*e);
        }
        env_strings.push_back("PGAPPNAME=" + identity());
        std::vector<char*> envp;
        for (auto& s : env_strings) envp.push_back(s.data());
        envp.push_back(nullptr);
        std::string bin = PGELECT_SPLITBRAIN_NODE, group = "checked", id = identity();
        std::vector<char*> argv{bin.data(), table_.data(), group.data(), id.data(), file_.data(), nullptr};
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        const std::string err = file_ + ".stderr";
        posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        const int rc = posix_spawn(&pid_, bin.c_str(), &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        ASSERT_EQ(rc, 0);
        alive_ = true;
        stopped_ = false;
    }
    void signal(int sig) {
        if (alive_) ::kill(pid_, sig);
        if (sig == SIGSTOP) stopped_ = true;
        if (sig == SIGCONT) stopped_ = false;
    }
    void kill9() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        kills_.push_back(now_ns());
        alive_ = false;
    }
    void terminate() {
        if (!alive_) return;
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        alive_ = false;
    }
    bool usable() const { return alive_ && !stopped_; }
    // Intervals from the file; an interval left open by a SIGKILL ends at the kill.
    std::vector<Interval> intervals() const {
        std::vector<Interval> out;
        std::ifstream in(file_);
        std::string kind;
        std::size_t kill_index = 0;
        while (in >> kind) {
            std::int64_t token;
            long long t;
            in >> token >> t;
            if (kind == "B") {
                out.push_back({index_, token, t, LLONG_MAX});
            } else {
                std::string reason;
                in >> reason;
                if (!out.empty() && out.back().end == LLONG_MAX && out.back().token == token) out.back().end = t;
            }
        }
        for (auto& iv : out) {
            if (iv.end != LLONG_MAX) continue;
            while (kill_index < kills_.size() && kills_[kill_index] < iv.start) ++kill_index;
            if (kill_index < kills_.size()) iv.end = kills_[kill_index];
        }
        return out;
    }
    bool believes_leader() const {
        auto iv = intervals();
        return !iv.empty() && iv.back().end == LLONG_MAX;
    }

private:
    int index_;
    std::string table_;
    std::string file_;
    pid_t pid_ = -1;
    bool alive_ = false;
    bool stopped_ = false;
    std::vector<long long> kills_;
};

void pg_ctl(const std::string& args) {
    const char* ctl = std::getenv("PGELECT_PG_CTL");
    ASSERT_NE(ctl, nullptr);
    ASSERT_EQ(std::system((std::string(ctl) + " " + args + " >/dev/null 2>&1").c_str()), 0);
}

TEST(SplitBrain, FiveCandidatesUnderFaultsNeverOverlap) {
    const std::string table = unique_table("sb");
    LockClient(dsn(), options_for(table)).create_table();
    char dir_template[] = "/tmp/pgelect-splitbrain.XXXXXX";
    const std::string dir = mkdtemp(dir_template);
    std::vector<std::unique_ptr<Node>> nodes;
    for (int i = 0; i < 5; ++i) {
        nodes.push_back(std::make_unique<Node>(i, table, dir));
        nodes.back()->spawn();
    }
    auto current_leader = [&]() -> Node* {
        std::string owner;
        try {
            auto r = sql("SELECT owner FROM \"" + table + "\" WHERE name = 'checked' AND record_version_number IS NOT NULL");
            if (r.empty()) return nullptr;
            owner = r[0][0].as<std::string>();
        } catch (const std::exception&) {
            return nullptr;
        }
        for (auto& n : nodes) {
            if (n->identity() == owner && n->usable() && n->believes_leader()) return n.get();
        }
        return nullptr;
    };
    const auto bound = kLease + kRetry + 500ms;
    std::map<std::string, int> faults;
    std::chrono::milliseconds worst_recovery{0};
    auto await_leader = [&](const std::string& fault, Clock::time_point healed) {
        Node* leader = nullptr;
        while (!(leader = current_leader()) && Clock::now() - healed < bound + 2s) {
            std::this_thread::sleep_for(20ms);
        }
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - healed);
        worst_recovery = std::max(worst_recovery, took);
        EXPECT_NE(leader, nullptr) << "no leader after " << fault;
        EXPECT_LE(took, bound) << "leader took " << took.count() << " ms to come back after " << fault;
        ++faults[fault];
        return leader;
    };

    Node* leader = nullptr;
    const auto first = Clock::now();
    while (!(leader = current_leader()) && Clock::now() - first < 10s) std::this_thread::sleep_for(20ms);
    ASSERT_NE(leader, nullptr) << "no leader at start";

    const std::vector<std::string> kinds{"sigkill", "sigstop", "terminate_backend", "restart",
                                         "row_lock", "resign"};
    const auto run_until = Clock::now() + 60s;
    for (std::size_t round = 0; Clock::now() < run_until; ++round) {
        const std::string kind = kinds[round % kinds.size()];
        leader = current_leader();
        if (!leader) leader = await_leader("settling", Clock::now());
        if (!leader) break;
        Clock::time_point healed;
        if (kind == "sigkill") {
            leader->kill9();
            healed = Clock::now();
            leader->spawn();  // a fresh candidate replaces it
        } else if (kind == "sigstop") {
            leader->signal(SIGSTOP);
            std::this_thread::sleep_for(2 * kLease);
            leader->signal(SIGCONT);
            healed = Clock::now();
        } else if (kind == "terminate_backend") {
            sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
                leader->identity() + "'");
            healed = Clock::now();
        } else if (kind == "restart") {
            pg_ctl("restart fast");
            healed = Clock::now();
        } else if (kind == "row_lock") {
            pqxx::connection c(dsn());
            pqxx::work tx(c);
            tx.exec("SELECT * FROM \"" + table + "\" WHERE name = 'checked' FOR UPDATE");
            std::this_thread::sleep_for(2 * kLease);
            tx.abort();
            healed = Clock::now();
        } else {
            leader->signal(SIGUSR1);
            healed = Clock::now();
        }
        await_leader(kind, healed);
        std::this_thread::sleep_for(500ms);  // let the new term settle
    }
    for (auto& n : nodes) n->terminate();

    // Check every interval of every process on the shared monotonic clock.
    std::vector<Interval> all;
    for (auto& n : nodes) {
        auto iv = n->intervals();
        all.insert(all.end(), iv.begin(), iv.end());
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.start < b.start; });
    long long worst_gap = 0;
    int overlaps = 0;
    for (std::size_t i = 1; i < all.size(); ++i) {
        const auto& prev = all[i - 1];
        const auto& cur = all[i];
        EXPECT_NE(prev.end, LLONG_MAX) << "interval of node " << prev.node << " never ended";
        if (cur.start < prev.end) {
            ++overlaps;
            ADD_FAILURE() << "overlap: node " << prev.node << " (token " << prev.token << ") until "
                          << prev.end << ", node " << cur.node << " (token " << cur.token << ") from "
                          << cur.start;
        }
        EXPECT_GT(cur.token, prev.token) << "fencing token did not increase";
        worst_gap = std::max(worst_gap, cur.start - prev.end);
    }
    int total_faults = 0;
    std::ostringstream summary;
    for (auto& [k, n] : faults) {
        if (k == "settling") continue;
        total_faults += n;
        summary << " " << k << "=" << n;
    }
    std::cout << "split-brain checker: " << total_faults << " faults (" << summary.str() << " ), "
              << all.size() << " leadership intervals, " << overlaps << " overlaps, worst leaderless gap "
              << worst_gap / 1000000 << " ms, worst recovery after a fault " << worst_recovery.count()
              << " ms (bound " << bound.count() << " ms)\n";
    EXPECT_EQ(overlaps, 0);
    EXPECT_GE(total_faults, 12);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pgelect::test
