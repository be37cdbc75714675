// Metrics without a database: the signals are emitted by hand and the series
// read back from the registry.
#include <gtest/gtest.h>
#include <prometheus/gauge.h>

#include <chrono>
#include <thread>

#include "pgelect/elector.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock_client.hpp"
#include "pgelect/metrics.hpp"
#include "scrape.hpp"

namespace pgelect::test {
namespace {

using namespace std::chrono_literals;

class MetricsUnitTest : public ::testing::Test {
protected:
    MetricsUnitTest() : client_("host=127.0.0.1 port=1 connect_timeout=1"), elector_(client_, options()) {}
    static ElectorOptions options() {
        ElectorOptions o;
        o.group = "jobs";
        o.identity = "me";
        return o;
    }
    double get(const std::string& name, const Labels& labels = {}) {
        Labels l = labels;
        l["group"] = "jobs";
        auto v = value_of(collect(registry_), name, l);
        EXPECT_TRUE(v.has_value()) << name;
        return v.value_or(-1);
    }
    void become(std::int64_t token) {
        Leadership l;
        l.group = "jobs";
        l.identity = "me";
        l.fencing_token = token;
        elector_.leader_changed(LeaderInfo{"me", "", token, {}});
        elector_.become_leader(l);
    }
    void lose(std::int64_t token, LossReason reason) {
        LossInfo l;
        l.group = "jobs";
        l.identity = "me";
        l.fencing_token = token;
        l.reason = reason;
        elector_.lost_leadership(l);
    }
    static RenewalReport renewal(std::vector<std::string> names, bool ok,
                                 std::vector<std::string> held, std::chrono::milliseconds elapsed) {
        RenewalReport r;
        r.names = std::move(names);
        r.ok = ok;
        r.still_held = std::move(held);
        r.elapsed = elapsed;
        return r;
    }

    prometheus::Registry registry_;
    LockClient client_;
    Elector elector_;
};

TEST_F(MetricsUnitTest, AttachCreatesEverySeriesAtZero) {
    Metrics m(registry_);
    m.attach(elector_, client_);
    EXPECT_EQ(get("pgelect_is_leader"), 0);
    EXPECT_EQ(get("pgelect_leader_transitions_total"), 0);
    for (auto reason : {"resigned", "stopped", "renewal_failed", "deadline_passed", "lock_taken",
                        "database_unavailable"})
        EXPECT_EQ(get("pgelect_leadership_lost_total", {{"reason", reason}}), 0) << reason;
    for (auto result : {"acquired", "busy", "error"})
        EXPECT_EQ(get("pgelect_acquire_attempts_total", {{"result", result}}), 0) << result;
    EXPECT_EQ(get("pgelect_renewal_duration_seconds_count"), 0);
    EXPECT_EQ(get("pgelect_leaderless_seconds_count"), 0);
    for (auto op : {"acquire", "renew", "release", "set_data"})
        EXPECT_EQ(get("pgelect_unknown_outcomes_total", {{"operation", op}}), 0) << op;
    EXPECT_EQ(count_of(collect(registry_), "pgelect_leader_info"), 0);
    EXPECT_EQ(m.groups(), std::vector<std::string>{"jobs"});
    EXPECT_THROW(m.attach(elector_, client_), InvalidArgumentError);
}

TEST_F(MetricsUnitTest, LeadershipTermsAndLosses) {
    Metrics m(registry_);
    m.attach(elector_, client_);
    become(41);
    EXPECT_EQ(get("pgelect_is_leader"), 1);
    EXPECT_EQ(get("pgelect_leader_transitions_total"), 1);
    EXPECT_EQ(get("pgelect_fencing_token"), 41);
    EXPECT_EQ(get("pgelect_leader_info", {{"leader", "me"}}), 1);
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    EXPECT_NEAR(get("pgelect_last_renewal_timestamp_seconds"), now, 5);  // acquisition counts

    lose(41, LossReason::lock_taken);
    EXPECT_EQ(get("pgelect_is_leader"), 0);
    EXPECT_EQ(get("pgelect_leadership_lost_total", {{"reason", "lock_taken"}}), 1);
    EXPECT_EQ(get("pgelect_leadership_lost_total", {{"reason", "resigned"}}), 0);
    EXPECT_EQ(count_of(collect(registry_), "pgelect_leader_info"), 0);  // no longer us
    EXPECT_EQ(get("pgelect_fencing_token"), 41);                      // last known

    elector_.leader_changed(LeaderInfo{"other", "", 42, {}});
    EXPECT_EQ(get("pgelect_fencing_token"), 42);
    EXPECT_EQ(get("pgelect_leader_info", {{"leader", "other"}}), 1);
    EXPECT_EQ(get("pgelect_leaderless_seconds_count"), 1);  // from our loss to seeing "other"
    elector_.leader_changed(LeaderInfo{"third", "", 43, {}});
    const auto samples = collect(registry_);
    EXPECT_EQ(count_of(samples, "pgelect_leader_info"), 1);  // the old label set is removed
    EXPECT_EQ(value_of(samples, "pgelect_leader_info", {{"leader", "third"}}), 1);
    EXPECT_EQ(get("pgelect_leaderless_seconds_count"), 1);  // a direct handover is not leaderless
}

TEST_F(MetricsUnitTest, LeaderlessTimeRunsFromFreeLeaseToNextLeader) {
    Metrics m(registry_);
    m.attach(elector_, client_);
    elector_.leader_changed(LeaderInfo{"other", "", 7, {}});
    elector_.leader_changed(std::nullopt);
    EXPECT_EQ(count_of(collect(registry_), "pgelect_leader_info"), 0);
    std::this_thread::sleep_for(120ms);  // the measured interval itself
    elector_.leader_changed(std::nullopt);  // still leaderless: the interval keeps its start
    become(8);
    EXPECT_EQ(get("pgelect_leaderless_seconds_count"), 1);
    EXPECT_GE(get("pgelect_leaderless_seconds_sum"), 0.1);
    EXPECT_LT(get("pgelect_leaderless_seconds_sum"), 5);
    EXPECT_EQ(get("pgelect_leaderless_seconds_bucket", {{"le", "0.1"}}), 0);
    EXPECT_EQ(get("pgelect_leaderless_seconds_bucket", {{"le", "+Inf"}}), 1);
}

TEST_F(MetricsUnitTest, RenewalsAndAttemptsOfOtherGroupsAreIgnored) {
    Metrics m(registry_);
    m.attach(elector_, client_);
    client_.acquire_attempted("jobs", AttemptResult::busy);
    client_.acquire_attempted("jobs", AttemptResult::busy);
    client_.acquire_attempted("other", AttemptResult::acquired);
    client_.acquire_attempted("jobs", AttemptResult::error);
    EXPECT_EQ(get("pgelect_acquire_attempts_total", {{"result", "busy"}}), 2);
    EXPECT_EQ(get("pgelect_acquire_attempts_total", {{"result", "error"}}), 1);
    EXPECT_EQ(get("pgelect_acquire_attempts_total", {{"result", "acquired"}}), 0);

    client_.renewal_finished(renewal({"other"}, false, {}, 3ms));
    EXPECT_EQ(get("pgelect_renewal_duration_seconds_count"), 0);
    client_.renewal_finished(renewal({"jobs", "other"}, true, {"jobs", "other"}, 3ms));
    EXPECT_EQ(get("pgelect_renewal_duration_seconds_count"), 1);
    EXPECT_EQ(get("pgelect_last_renewal_timestamp_seconds"), 0);  // not leader: not our lease
    become(5);
    client_.renewal_finished(renewal({"jobs"}, false, {}, 2000ms));
    EXPECT_EQ(get("pgelect_renewal_failures_total"), 1);
    EXPECT_EQ(get("pgelect_renewal_duration_seconds_count"), 2);
    EXPECT_NEAR(get("pgelect_renewal_duration_seconds_sum"), 2.003, 1e-6);
    EXPECT_EQ(get("pgelect_renewal_duration_seconds_bucket", {{"le", "0.005"}}), 1);
}

TEST_F(MetricsUnitTest, UnknownOutcomesAreCountedByOperationForTheirGroupOnly) {
    Metrics m(registry_);
    m.attach(elector_, client_);
    client_.outcome_unknown(UnknownOutcome{"jobs", "renew", "WARNING: canceling wait"});
    client_.outcome_unknown(UnknownOutcome{"jobs", "renew", "WARNING: canceling wait"});
    client_.outcome_unknown(UnknownOutcome{"jobs", "acquire", "WARNING: canceling wait"});
    client_.outcome_unknown(UnknownOutcome{"other", "release", "WARNING: canceling wait"});
    EXPECT_EQ(get("pgelect_unknown_outcomes_total", {{"operation", "renew"}}), 2);
    EXPECT_EQ(get("pgelect_unknown_outcomes_total", {{"operation", "acquire"}}), 1);
    EXPECT_EQ(get("pgelect_unknown_outcomes_total", {{"operation", "release"}}), 0);
    EXPECT_EQ(get("pgelect_unknown_outcomes_total", {{"operation", "set_data"}}), 0);
}

TEST_F(MetricsUnitTest, TimelineGrowthIsCountedAsAFailover) {
    Metrics m(registry_);
    m.attach(elector_, client_);
    EXPECT_EQ(get("pgelect_timeline"), 0);
    client_.timeline_seen(1);
    client_.timeline_seen(1);
    EXPECT_EQ(get("pgelect_timeline"), 1);
    EXPECT_EQ(get("pgelect_failovers_total"), 0);  // the first reading is no failover
    client_.timeline_seen(3);
    EXPECT_EQ(get("pgelect_timeline"), 3);
    EXPECT_EQ(get("pgelect_failovers_total"), 1);
    client_.timeline_seen(2);  // an old standby answering late: no step back
    EXPECT_EQ(get("pgelect_timeline"), 3);
    EXPECT_EQ(get("pgelect_failovers_total"), 1);
}

TEST_F(MetricsUnitTest, DestructionDisconnectsAndRemovesTheGroupsSeries) {
    auto m = std::make_unique<Metrics>(registry_);
    m->attach(elector_, client_);
    become(3);
    m.reset();
    EXPECT_EQ(count_of(collect(registry_), "pgelect_is_leader"), 0);
    EXPECT_EQ(count_of(collect(registry_), "pgelect_leader_info"), 0);
    // Signals after destruction reach nobody (and crash nothing).
    lose(3, LossReason::stopped);
    client_.acquire_attempted("jobs", AttemptResult::busy);
    EXPECT_EQ(count_of(collect(registry_), "pgelect_acquire_attempts_total"), 0);
    // A new Metrics on the same registry starts over.
    Metrics again(registry_);
    again.attach(elector_, client_);
    EXPECT_EQ(get("pgelect_leader_transitions_total"), 0);
}

TEST(MetricsServerTest, ServesTheRegistryOnAFreePort) {
    auto registry = std::make_shared<prometheus::Registry>();
    prometheus::BuildGauge().Name("pgelect_is_leader").Help("h").Register(*registry).Add({{"group", "x"}}).Set(1);
    MetricsServer server("127.0.0.1:0", registry, "/m");
    ASSERT_GT(server.port(), 0);
    EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/m");
    auto r = http_get(server.port(), "/m");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(value_of(parse_samples(r.body), "pgelect_is_leader", {{"group", "x"}}), 1);
    EXPECT_EQ(http_get(server.port(), "/other").status, 404);
}

TEST(MetricsServerTest, RejectsBadArguments) {
    auto registry = std::make_shared<prometheus::Registry>();
    EXPECT_THROW(MetricsServer("", registry), InvalidArgumentError);
    EXPECT_THROW(MetricsServer("127.0.0.1", registry), InvalidArgumentError);
    EXPECT_THROW(MetricsServer("127.0.0.1:0", registry, "metrics"), InvalidArgumentError);
    EXPECT_THROW(MetricsServer("127.0.0.1:0", nullptr), InvalidArgumentError);
    MetricsServer first("127.0.0.1:0", registry);
    EXPECT_THROW(MetricsServer("127.0.0.1:" + std::to_string(first.port()), registry), UnavailableError);
}

}  // namespace
}  // namespace pgelect::test
