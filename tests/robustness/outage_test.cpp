// Database outages: an elector started while PostgreSQL is down becomes leader
// once it is up; a long outage (3 x lease) never yields two leaders and ends
// with exactly one.
#include <cstdlib>
#include <mutex>

#include "test_env.hpp"

namespace pgelect::test {
namespace {

using Clock = std::chrono::steady_clock;

void pg_ctl(const std::string& args) {
    const char* ctl = std::getenv("PGELECT_PG_CTL");
    ASSERT_NE(ctl, nullptr) << "run through scripts/with-postgres";
    ASSERT_EQ(std::system((std::string(ctl) + " " + args + " >/dev/null 2>&1").c_str()), 0) << args;
}

// Terms believed by several electors, on one steady clock.
struct Terms {
    struct Term {
        std::string who;
        std::int64_t token;
        Clock::time_point start, end = Clock::time_point::max();
    };
    void watch(Elector& e) {
        e.become_leader.connect([this, &e](const Leadership& l) {
            std::lock_guard lk(mu);
            terms.push_back({e.identity(), l.fencing_token, Clock::now()});
        });
        e.lost_leadership.connect([this](const LossInfo& l) {
            std::lock_guard lk(mu);
            for (auto& t : terms) {
                if (t.token == l.fencing_token && t.end == Clock::time_point::max()) t.end = l.valid_until;
            }
        });
    }
    void expect_no_overlap() {
        std::lock_guard lk(mu);
        auto sorted = terms;
        std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.start < b.start; });
        for (std::size_t i = 1; i < sorted.size(); ++i) {
            EXPECT_LE(sorted[i - 1].end, sorted[i].start)
                << sorted[i - 1].who << " (term " << sorted[i - 1].token << ") overlapped "
                << sorted[i].who << " (term " << sorted[i].token << ")";
            EXPECT_LT(sorted[i - 1].token, sorted[i].token);
        }
    }
    std::mutex mu;
    std::vector<Term> terms;
};

ElectorOptions group(const std::string& identity) {
    ElectorOptions o;
    o.group = "outage";
    o.identity = identity;
    o.max_backoff = 400ms;
    return o;
}

TEST(Outage, ElectorStartedWhileTheDatabaseIsDownLeadsOnceItIsUp) {
    const std::string table = unique_table("out");
    LockClient(dsn(), options_for(table)).create_table();
    pg_ctl("stop fast");
    auto o = options_for(table);
    o.connect_timeout = 2s;
    LockClient client(dsn(), o);
    Elector e(client, group("early"));
    e.start();
    EXPECT_FALSE(e.wait_for_leadership(1500ms));  // retrying with backoff meanwhile
    pg_ctl("start");
    const auto up = Clock::now();
    ASSERT_TRUE(e.wait_for_leadership(5s));
    EXPECT_LT(Clock::now() - up, 3s);  // within the capped backoff plus a round trip
    e.stop();
}

TEST(Outage, LongOutageNeverYieldsTwoLeadersAndEndsWithOne) {
    const std::string table = unique_table("out");
    LockClient(dsn(), options_for(table)).create_table();
    auto o = options_for(table);
    o.connect_timeout = 2s;
    o.statement_timeout = 600ms;
    LockClient c1(dsn(), o), c2(dsn(), o);
    Elector a(c1, group("a")), b(c2, group("b"));
    Terms terms;
    terms.watch(a);
    terms.watch(b);
    a.start();
    ASSERT_TRUE(a.wait_for_leadership(5s));
    b.start();
    std::this_thread::sleep_for(300ms);
    pg_ctl("stop fast");
    ASSERT_TRUE(eventually([&] { return !a.is_leader(); }, 2s));  // renew deadline, locally
    std::this_thread::sleep_for(3000ms);                            // 3 x lease in all
    EXPECT_FALSE(a.is_leader() || b.is_leader());
    pg_ctl("start");
    ASSERT_TRUE(eventually([&] { return a.is_leader() || b.is_leader(); }, 6s));
    std::this_thread::sleep_for(1500ms);  // settled: still exactly one
    EXPECT_NE(a.is_leader(), b.is_leader());
    a.stop();
    b.stop();
    terms.expect_no_overlap();
    std::lock_guard lk(terms.mu);
    EXPECT_GE(terms.terms.size(), 2u);
}

}  // namespace
}  // namespace pgelect::test
