// Metrics of real electors on the real database, scraped over HTTP from
// prometheus::Exposer through a handover.
#include <prometheus/exposer.h>

#include "pgelect/metrics.hpp"
#include "scrape.hpp"
#include "test_env.hpp"

namespace pgelect::test {
namespace {

// Renewals every 200 ms as with fast_timing(), with a renew deadline of
// seconds: nothing here waits out a lease, and a loaded machine must not cost
// a leader its lease (and its renewal series) between two scrapes.
LeaseTiming scrape_timing() {
    LeaseTiming t = fast_timing();
    t.lease_duration = 5s;
    t.renew_deadline = 4s;
    return t;
}

// How long a candidate may take to lead: its first connections alone took
// seconds on a loaded 2-core machine.
constexpr auto kLeaderWait = 15s;

// One candidate: its own client, elector, registry, Metrics and endpoint.
struct Candidate {
    Candidate(const std::string& table, const std::string& identity)
        : client(dsn(), options_for(table, scrape_timing())), elector(client, elector_options(identity)),
          registry(std::make_shared<prometheus::Registry>()), metrics(*registry),
          exposer("127.0.0.1:0") {
        metrics.attach(elector, client);
        exposer.RegisterCollectable(registry);
    }
    static ElectorOptions elector_options(const std::string& identity) {
        ElectorOptions o;
        o.group = "metrics";
        o.identity = identity;
        return o;
    }
    std::vector<Sample> scrape() {
        const auto ports = exposer.GetListeningPorts();
        EXPECT_EQ(ports.size(), 1u);
        auto r = http_get(ports.at(0), "/metrics");
        EXPECT_EQ(r.status, 200);
        return parse_samples(r.body);
    }
    // The value of one series of this group; -1 if absent.
    double get(const std::string& name, Labels labels = {}) {
        labels["group"] = "metrics";
        return value_of(scrape(), name, labels).value_or(-1);
    }
    bool shows_leader(const std::string& identity) {
        const auto s = scrape();
        return count_of(s, "pgelect_leader_info") == 1 &&
               value_of(s, "pgelect_leader_info", {{"group", "metrics"}, {"leader", identity}}) == 1;
    }

    LockClient client;
    Elector elector;
    std::shared_ptr<prometheus::Registry> registry;
    Metrics metrics;
    prometheus::Exposer exposer;
};

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class MetricsScrapeTest : public LockTableTest {};

TEST_F(MetricsScrapeTest, SeriesFollowAHandover) {
    Candidate a(table_, "alpha");
    Candidate b(table_, "beta");
    a.elector.start();
    ASSERT_TRUE(a.elector.wait_for_leadership(kLeaderWait));
    b.elector.start();
    const auto token_a = a.elector.leadership()->fencing_token;

    // The leader reports itself (become_leader runs just after
    // wait_for_leadership returns); the follower reports the leader it observes.
    ASSERT_TRUE(eventually([&] { return a.get("pgelect_is_leader") == 1; }, 5s));
    EXPECT_EQ(a.get("pgelect_leader_transitions_total"), 1);
    EXPECT_EQ(a.get("pgelect_fencing_token"), static_cast<double>(token_a));
    EXPECT_GE(a.get("pgelect_acquire_attempts_total", {{"result", "acquired"}}), 1);
    EXPECT_TRUE(a.shows_leader("alpha"));
    ASSERT_TRUE(eventually([&] { return b.shows_leader("alpha"); }, 5s));
    EXPECT_EQ(b.get("pgelect_is_leader"), 0);
    EXPECT_EQ(b.get("pgelect_leader_transitions_total"), 0);
    EXPECT_EQ(b.get("pgelect_fencing_token"), static_cast<double>(token_a));
    ASSERT_TRUE(eventually([&] { return b.get("pgelect_acquire_attempts_total", {{"result", "busy"}}) >= 1; }, 5s));
    EXPECT_EQ(b.get("pgelect_acquire_attempts_total", {{"result", "acquired"}}), 0);

    // Renewals (every 200 ms with fast_timing) are timed and stamped.
    ASSERT_TRUE(eventually([&] { return a.get("pgelect_renewal_duration_seconds_count") >= 2; }, 5s));
    EXPECT_GT(a.get("pgelect_renewal_duration_seconds_sum"), 0);
    EXPECT_LT(a.get("pgelect_renewal_duration_seconds_sum"),
              a.get("pgelect_renewal_duration_seconds_count") * 1.0);  // well under a second each
    EXPECT_EQ(a.get("pgelect_renewal_failures_total"), 0);
    EXPECT_NEAR(a.get("pgelect_last_renewal_timestamp_seconds"), unix_now(), 2.0);
    EXPECT_EQ(b.get("pgelect_renewal_duration_seconds_count"), 0);  // b holds no lease
    EXPECT_EQ(b.get("pgelect_last_renewal_timestamp_seconds"), 0);

    // Resign with a cooldown: beta takes over, alpha sees it when it campaigns again.
    a.elector.resign(1s);
    ASSERT_TRUE(b.elector.wait_for_leadership(kLeaderWait));
    const auto token_b = b.elector.leadership()->fencing_token;
    EXPECT_GT(token_b, token_a);
    ASSERT_TRUE(eventually([&] { return a.get("pgelect_leadership_lost_total", {{"reason", "resigned"}}) == 1; }, 5s));
    EXPECT_EQ(a.get("pgelect_is_leader"), 0);
    EXPECT_EQ(a.get("pgelect_leadership_lost_total", {{"reason", "lock_taken"}}), 0);
    ASSERT_TRUE(eventually([&] { return b.get("pgelect_is_leader") == 1; }, 5s));
    EXPECT_EQ(b.get("pgelect_leader_transitions_total"), 1);
    EXPECT_EQ(b.get("pgelect_fencing_token"), static_cast<double>(token_b));
    EXPECT_TRUE(b.shows_leader("beta"));
    EXPECT_GE(b.get("pgelect_acquire_attempts_total", {{"result", "acquired"}}), 1);
    ASSERT_TRUE(eventually([&] { return b.get("pgelect_renewal_duration_seconds_count") >= 1; }, 5s));
    EXPECT_NEAR(b.get("pgelect_last_renewal_timestamp_seconds"), unix_now(), 2.0);

    // After its cooldown alpha campaigns again, observes beta and closes its
    // leaderless interval (about the 1 s cooldown: it was not looking before).
    ASSERT_TRUE(eventually([&] { return a.shows_leader("beta"); }, 5s));
    EXPECT_EQ(a.get("pgelect_fencing_token"), static_cast<double>(token_b));
    EXPECT_EQ(a.get("pgelect_leaderless_seconds_count"), 1);
    EXPECT_GT(a.get("pgelect_leaderless_seconds_sum"), 0.5);
    EXPECT_LT(a.get("pgelect_leaderless_seconds_sum"), 5);
    EXPECT_EQ(a.get("pgelect_leader_transitions_total"), 1);
    EXPECT_EQ(a.get("pgelect_is_leader"), 0);

    // Stopping the leader counts as "stopped".
    b.elector.stop();
    EXPECT_EQ(b.get("pgelect_leadership_lost_total", {{"reason", "stopped"}}), 1);
    EXPECT_EQ(b.get("pgelect_is_leader"), 0);
    ASSERT_TRUE(eventually([&] { return a.get("pgelect_leader_transitions_total") == 2; }, 5s));
    EXPECT_EQ(a.get("pgelect_is_leader"), 1);
    a.elector.stop();
}

TEST_F(MetricsScrapeTest, OneMetricsServesSeveralGroupsOnOneClient) {
    auto registry = std::make_shared<prometheus::Registry>();
    Metrics metrics(*registry);
    MetricsServer server("127.0.0.1:0", registry);
    std::vector<std::unique_ptr<Elector>> electors;
    for (auto group : {"g1", "g2"}) {
        ElectorOptions o;
        o.group = group;
        o.identity = "solo";
        o.timing = scrape_timing();  // one acquisition per group, even on a busy machine
        electors.push_back(std::make_unique<Elector>(*client_, o));
        metrics.attach(*electors.back(), *client_);
        electors.back()->start();
    }
    for (auto& e : electors) ASSERT_TRUE(e->wait_for_leadership(kLeaderWait));
    // One renewal statement renews both leases: each group counts it.
    ASSERT_TRUE(eventually([&] {
        const auto s = parse_samples(http_get(server.port(), "/metrics").body);
        return value_of(s, "pgelect_is_leader", {{"group", "g1"}}) == 1 &&
               value_of(s, "pgelect_is_leader", {{"group", "g2"}}) == 1 &&
               value_of(s, "pgelect_renewal_duration_seconds_count", {{"group", "g1"}}) >= 1 &&
               value_of(s, "pgelect_renewal_duration_seconds_count", {{"group", "g2"}}) >= 1;
    }, 5s));
    const auto s = parse_samples(http_get(server.port(), "/metrics").body);
    for (auto group : {"g1", "g2"}) {
        EXPECT_EQ(value_of(s, "pgelect_is_leader", {{"group", group}}), 1) << group;
        EXPECT_EQ(value_of(s, "pgelect_leader_info", {{"group", group}, {"leader", "solo"}}), 1) << group;
        EXPECT_EQ(value_of(s, "pgelect_acquire_attempts_total", {{"group", group}, {"result", "acquired"}}), 1)
            << group;
    }
    EXPECT_EQ(count_of(s, "pgelect_is_leader"), 2);
    for (auto& e : electors) e->stop();
}

}  // namespace
}  // namespace pgelect::test
