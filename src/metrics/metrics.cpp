// Metrics: the slots that turn election signals into Prometheus series.
#include "pgelect/metrics.hpp"

#include <boost/signals2/connection.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <type_traits>

#include "pgelect/elector.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock_client.hpp"
#include "pgelect/log.hpp"

namespace pgelect {

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

constexpr std::array<MetricDescription, 13> kDescriptions{{
    {"pgelect_is_leader", MetricKind::gauge, "group",
     "1 while this instance leads the group, else 0"},
    {"pgelect_leader_transitions_total", MetricKind::counter, "group",
     "Terms won by this instance"},
    {"pgelect_leadership_lost_total", MetricKind::counter, "group,reason",
     "Terms of this instance that ended, by reason"},
    {"pgelect_fencing_token", MetricKind::gauge, "group",
     "Fencing token of the current term while leading, else of the last observed leader"},
    {"pgelect_last_renewal_timestamp_seconds", MetricKind::gauge, "group",
     "Unix time of the last successful acquisition or renewal of the lease by this instance"},
    {"pgelect_renewal_duration_seconds", MetricKind::histogram, "group",
     "Duration of renewal statements that included the group's lease"},
    {"pgelect_renewal_failures_total", MetricKind::counter, "group",
     "Renewal statements including the group's lease that failed (outcome unknown)"},
    {"pgelect_acquire_attempts_total", MetricKind::counter, "group,result",
     "Conditional upserts trying to take the group's lease, by result"},
    {"pgelect_leaderless_seconds", MetricKind::histogram, "group",
     "Time from this instance seeing the group without a leader to it seeing a new one"},
    {"pgelect_leader_info", MetricKind::gauge, "group,leader",
     "1 for the leader this instance currently observes"},
    {"pgelect_unknown_outcomes_total", MetricKind::counter, "group,operation",
     "Writes of the group's lease answered with a warning (a cancelled synchronous replication "
     "wait), counted as not done"},
    {"pgelect_timeline", MetricKind::gauge, "group",
     "The PostgreSQL server's timeline as this instance's client last read it (grows with every "
     "promotion); 0 until read"},
    {"pgelect_failovers_total", MetricKind::counter, "group",
     "Times this instance's client saw the server's timeline grow (a promotion)"},
}};

constexpr std::array<LossReason, 6> kReasons{
    LossReason::resigned,       LossReason::stopped,   LossReason::renewal_failed,
    LossReason::deadline_passed, LossReason::lock_taken, LossReason::database_unavailable};
constexpr std::array<AttemptResult, 3> kResults{AttemptResult::acquired, AttemptResult::busy,
                                                 AttemptResult::error};
constexpr std::array<std::string_view, 4> kWrites{"acquire", "renew", "release", "set_data"};

std::string help_of(std::string_view name) {
    for (const auto& d : kDescriptions)
        if (d.name == name) return std::string(d.help);
    return {};
}

template <class T>
Family<T>& family(prometheus::Registry& registry, std::string_view name) {
    auto builder = [] {
        if constexpr (std::is_same_v<T, Counter>) return prometheus::BuildCounter();
        else if constexpr (std::is_same_v<T, Gauge>) return prometheus::BuildGauge();
        else return prometheus::BuildHistogram();
    }();
    return builder.Name(std::string(name)).Help(help_of(name)).Register(registry);
}

double unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

double seconds(std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

}  // namespace

namespace detail {

struct MetricFamilies {
    explicit MetricFamilies(prometheus::Registry& r)
        : is_leader(family<Gauge>(r, "pgelect_is_leader")),
          transitions(family<Counter>(r, "pgelect_leader_transitions_total")),
          lost(family<Counter>(r, "pgelect_leadership_lost_total")),
          fencing_token(family<Gauge>(r, "pgelect_fencing_token")),
          last_renewal(family<Gauge>(r, "pgelect_last_renewal_timestamp_seconds")),
          renewal_duration(family<Histogram>(r, "pgelect_renewal_duration_seconds")),
          renewal_failures(family<Counter>(r, "pgelect_renewal_failures_total")),
          attempts(family<Counter>(r, "pgelect_acquire_attempts_total")),
          leaderless(family<Histogram>(r, "pgelect_leaderless_seconds")),
          leader_info(family<Gauge>(r, "pgelect_leader_info")),
          unknown_outcomes(family<Counter>(r, "pgelect_unknown_outcomes_total")),
          timeline(family<Gauge>(r, "pgelect_timeline")),
          failovers(family<Counter>(r, "pgelect_failovers_total")) {}

    Family<Gauge>& is_leader;
    Family<Counter>& transitions;
    Family<Counter>& lost;
    Family<Gauge>& fencing_token;
    Family<Gauge>& last_renewal;
    Family<Histogram>& renewal_duration;
    Family<Counter>& renewal_failures;
    Family<Counter>& attempts;
    Family<Histogram>& leaderless;
    Family<Gauge>& leader_info;
    Family<Counter>& unknown_outcomes;
    Family<Gauge>& timeline;
    Family<Counter>& failovers;
};

// One group's series and what the slots remember between signals.  Shared with
// the slots, so a slot still running while Metrics is destroyed has its state.
struct GroupMetrics {
    GroupMetrics(MetricFamilies& f, std::string group_name, std::string own_identity)
        : families(f), group(std::move(group_name)), identity(std::move(own_identity)),
          is_leader(f.is_leader.Add({{"group", group}})),
          transitions(f.transitions.Add({{"group", group}})),
          fencing_token(f.fencing_token.Add({{"group", group}})),
          last_renewal(f.last_renewal.Add({{"group", group}})),
          renewal_duration(f.renewal_duration.Add(
              {{"group", group}},
              Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5, 1, 2.5, 5, 10})),
          renewal_failures(f.renewal_failures.Add({{"group", group}})),
          timeline(f.timeline.Add({{"group", group}})),
          failovers(f.failovers.Add({{"group", group}})),
          leaderless(f.leaderless.Add({{"group", group}},
                                      Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                                                  10, 15, 30, 60, 120, 300, 600})) {
        // Every reason and result from the start, so increase() sees the first one.
        for (std::size_t i = 0; i < kReasons.size(); ++i)
            lost[i] = &f.lost.Add({{"group", group}, {"reason", std::string(to_string(kReasons[i]))}});
        for (std::size_t i = 0; i < kResults.size(); ++i)
            attempts[i] =
                &f.attempts.Add({{"group", group}, {"result", std::string(to_string(kResults[i]))}});
        for (std::size_t i = 0; i < kWrites.size(); ++i)
            unknown_outcomes[i] =
                &f.unknown_outcomes.Add({{"group", group}, {"operation", std::string(kWrites[i])}});
    }

    void on_become_leader(const Leadership& term) {
        std::lock_guard lk(mu);
        if (closed) return;
        leader = true;
        is_leader.Set(1);
        transitions.Increment();
        fencing_token.Set(static_cast<double>(term.fencing_token));
        last_renewal.Set(unix_seconds(std::chrono::system_clock::now()));
        show_leader(identity);
        end_leaderless();
    }

    void on_lost_leadership(const LossInfo& loss) {
        std::lock_guard lk(mu);
        if (closed) return;
        leader = false;
        is_leader.Set(0);
        for (std::size_t i = 0; i < kReasons.size(); ++i)
            if (kReasons[i] == loss.reason) lost[i]->Increment();
        // Nobody is known to lead until the elector observes the table again.
        if (shown_leader == identity) show_leader(std::nullopt);
        if (!leaderless_since) leaderless_since = std::chrono::steady_clock::now();
    }

    void on_leader_changed(const std::optional<LeaderInfo>& info) {
        std::lock_guard lk(mu);
        if (closed) return;
        if (!info) {
            show_leader(std::nullopt);
            if (!leaderless_since) leaderless_since = std::chrono::steady_clock::now();
            return;
        }
        fencing_token.Set(static_cast<double>(info->fencing_token));
        show_leader(info->identity);
        end_leaderless();
    }

    void on_renewal(const RenewalReport& report) {
        if (std::find(report.names.begin(), report.names.end(), group) == report.names.end()) return;
        const auto now = std::chrono::system_clock::now();
        std::lock_guard lk(mu);
        if (closed) return;
        renewal_duration.Observe(seconds(report.elapsed));
        if (!report.ok) {
            renewal_failures.Increment();
        } else if (leader && std::find(report.still_held.begin(), report.still_held.end(), group) !=
                                 report.still_held.end()) {
            last_renewal.Set(unix_seconds(now));
        }
    }

    void on_attempt(const std::string& name, AttemptResult result) {
        if (name != group) return;
        std::lock_guard lk(mu);
        if (closed) return;
        for (std::size_t i = 0; i < kResults.size(); ++i)
            if (kResults[i] == result) attempts[i]->Increment();
    }

    void on_timeline(std::int64_t seen) {
        std::lock_guard lk(mu);
        if (closed) return;
        if (last_timeline > 0 && seen > last_timeline) failovers.Increment();
        if (seen > last_timeline) {
            last_timeline = seen;
            timeline.Set(static_cast<double>(seen));
        }
    }

    void on_unknown_outcome(const UnknownOutcome& u) {
        if (u.name != group) return;
        std::lock_guard lk(mu);
        if (closed) return;
        for (std::size_t i = 0; i < kWrites.size(); ++i)
            if (kWrites[i] == u.operation) unknown_outcomes[i]->Increment();
    }

    // Stops the slots touching the registry and removes this group's series.
    void close() {
        std::lock_guard lk(mu);
        if (closed) return;
        closed = true;
        show_leader(std::nullopt);
        families.is_leader.Remove(&is_leader);
        families.transitions.Remove(&transitions);
        for (auto* c : lost) families.lost.Remove(c);
        families.fencing_token.Remove(&fencing_token);
        families.last_renewal.Remove(&last_renewal);
        families.renewal_duration.Remove(&renewal_duration);
        families.renewal_failures.Remove(&renewal_failures);
        for (auto* c : attempts) families.attempts.Remove(c);
        for (auto* c : unknown_outcomes) families.unknown_outcomes.Remove(c);
        families.timeline.Remove(&timeline);
        families.failovers.Remove(&failovers);
        families.leaderless.Remove(&leaderless);
    }

    // constant after construction
    MetricFamilies& families;  // valid until closed
    const std::string group;
    const std::string identity;
    Gauge& is_leader;
    Counter& transitions;
    std::array<Counter*, kReasons.size()> lost{};
    Gauge& fencing_token;
    Gauge& last_renewal;
    Histogram& renewal_duration;
    Counter& renewal_failures;
    Gauge& timeline;
    Counter& failovers;
    std::array<Counter*, kResults.size()> attempts{};
    std::array<Counter*, kWrites.size()> unknown_outcomes{};
    Histogram& leaderless;

    // guarded by mu
    std::mutex mu;
    bool closed = false;
    std::int64_t last_timeline = 0;
    bool leader = false;
    std::optional<std::string> shown_leader;
    Gauge* leader_info = nullptr;
    std::optional<std::chrono::steady_clock::time_point> leaderless_since;

private:
    // Points pgelect_leader_info at `who` (or at nobody), one label set at a time.
    void show_leader(const std::optional<std::string>& who) {
        if (shown_leader == who) return;
        if (leader_info != nullptr) families.leader_info.Remove(leader_info);
        leader_info = nullptr;
        shown_leader = who;
        if (who) {
            leader_info = &families.leader_info.Add({{"group", group}, {"leader", *who}});
            leader_info->Set(1);
        }
    }

    void end_leaderless() {
        if (!leaderless_since) return;
        leaderless.Observe(seconds(std::chrono::steady_clock::now() - *leaderless_since));
        leaderless_since.reset();
    }
};

struct Attachment {
    std::shared_ptr<GroupMetrics> group;
    std::vector<boost::signals2::scoped_connection> connections;
};

}  // namespace detail

namespace {
// Slots must not throw into the signals (the client's signals have no combiner
// that would catch): a failure is logged and the series stay as they were.
template <class Fn>
auto guarded(std::shared_ptr<detail::GroupMetrics> g, Fn fn) {
    return [g = std::move(g), fn](const auto&... args) {
        try {
            fn(*g, args...);
        } catch (const std::exception& e) {
            log(LogLevel::error, "metrics of group \"" + g->group + "\": " + e.what());
        } catch (...) {
            log(LogLevel::error, "metrics of group \"" + g->group + "\": unknown exception");
        }
    };
}
}  // namespace

std::span<const MetricDescription> metric_descriptions() noexcept { return kDescriptions; }

Metrics::Metrics(prometheus::Registry& registry)
    : families_(std::make_unique<detail::MetricFamilies>(registry)) {}

Metrics::~Metrics() {
    std::lock_guard lk(mu_);
    for (auto& a : attachments_) {
        for (auto& c : a->connections) c.disconnect();
        a->group->close();
    }
}

void Metrics::attach(Elector& elector, LockClient& client) {
    std::lock_guard lk(mu_);
    for (const auto& a : attachments_)
        if (a->group->group == elector.group())
            throw InvalidArgumentError("metrics: group \"" + elector.group() + "\" is already attached");
    auto g = std::make_shared<detail::GroupMetrics>(*families_, elector.group(), elector.identity());
    auto a = std::make_unique<detail::Attachment>();
    a->group = g;
    auto& c = a->connections;
    c.reserve(7);
    c.emplace_back(elector.become_leader.connect(
        guarded(g, [](auto& m, const Leadership& t) { m.on_become_leader(t); })));
    c.emplace_back(elector.lost_leadership.connect(
        guarded(g, [](auto& m, const LossInfo& l) { m.on_lost_leadership(l); })));
    c.emplace_back(elector.leader_changed.connect(
        guarded(g, [](auto& m, const std::optional<LeaderInfo>& i) { m.on_leader_changed(i); })));
    c.emplace_back(client.renewal_finished.connect(
        guarded(g, [](auto& m, const RenewalReport& r) { m.on_renewal(r); })));
    c.emplace_back(client.acquire_attempted.connect(guarded(
        g, [](auto& m, const std::string& name, AttemptResult r) { m.on_attempt(name, r); })));
    c.emplace_back(client.outcome_unknown.connect(
        guarded(g, [](auto& m, const UnknownOutcome& u) { m.on_unknown_outcome(u); })));
    c.emplace_back(client.timeline_seen.connect(
        guarded(g, [](auto& m, std::int64_t t) { m.on_timeline(t); })));
    attachments_.push_back(std::move(a));
}

std::vector<std::string> Metrics::groups() const {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& a : attachments_) out.push_back(a->group->group);
    return out;
}

}  // namespace pgelect
