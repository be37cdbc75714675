// Prometheus metrics of elections (see docs/metrics.md for every series).
#pragma once

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/registry.h>

namespace prometheus {
class Exposer;
}

namespace pgelect {

class Elector;
class LockClient;

namespace detail {
struct MetricFamilies;
struct Attachment;
}  // namespace detail

enum class MetricKind { counter, gauge, histogram };

// One exported metric family.  A histogram is scraped as <name>_bucket,
// <name>_sum and <name>_count.
struct MetricDescription {
    std::string_view name;    // "pgelect_is_leader"
    MetricKind kind;
    std::string_view labels;  // comma-separated label names, e.g. "group,reason"
    std::string_view help;
};

// Every metric family Metrics registers, in a fixed order.
std::span<const MetricDescription> metric_descriptions() noexcept;

// Metrics turns the signals of Electors and their LockClients into Prometheus
// series on a registry the caller owns, every series labelled with the
// elector's `group`.  All methods may be called from any thread; the slots run
// on the electors' and clients' own threads and take one mutex per group.
//
// Lifetime: the registry must outlive the Metrics.  Electors and clients may be
// destroyed before or after it: the destructor disconnects every slot, waits
// for slots already running to leave the registry alone, and removes the
// series it added, so a stopped group does not keep reporting a leader.
//
// Several Metrics may share one registry (with the registry's default
// InsertBehavior::Merge they share the families), but each group must be
// attached only once per registry: two electors of one group reporting into
// the same series would overwrite each other.
class Metrics {
public:
    // Registers (or, on a merging registry, finds) the metric families.
    explicit Metrics(prometheus::Registry& registry);
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    // Connects to elector's become_leader, lost_leadership and leader_changed
    // and to client's renewal_finished and acquire_attempted (filtered on the
    // elector's group: one client may serve many electors).  Call it before
    // elector.start() so that nothing is missed.  `client` must be the one the
    // elector was built with.  InvalidArgumentError if this Metrics already
    // has the group.
    void attach(Elector& elector, LockClient& client);

    // The groups attached so far, in order.
    std::vector<std::string> groups() const;

private:
    std::unique_ptr<detail::MetricFamilies> families_;  // constant after construction
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<detail::Attachment>> attachments_;  // guarded by mu_
};

// MetricsServer serves a registry over HTTP with prometheus::Exposer (which
// it owns): GET http://<listen><path> returns the text exposition format.
// All methods may be called from any thread; requests are answered on the
// exposer's own threads.  The destructor stops listening.
//
//     auto registry = std::make_shared<prometheus::Registry>();
//     pgelect::Metrics metrics(*registry);
//     pgelect::MetricsServer server("0.0.0.0:9464", registry);
//     metrics.attach(elector, client);
class MetricsServer {
public:
    // listen: "host:port" ("127.0.0.1:0" picks a free port, see port()).
    // path: must start with '/'.  The server keeps `registry` alive.
    // InvalidArgumentError for an empty listen address or a bad path or
    // registry; UnavailableError when it cannot listen.
    MetricsServer(const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
                  const std::string& path = "/metrics");
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // The port actually listened on (the first one, if several).
    int port() const;
    // "http://<host>:<port><path>", with the actual port.
    std::string url() const;
    prometheus::Registry& registry() const { return *registry_; }
    // To serve more collectables (Exposer::RegisterCollectable) or add auth.
    prometheus::Exposer& exposer() { return *exposer_; }

private:
    // constant after construction
    std::string host_;
    std::string path_;
    std::shared_ptr<prometheus::Registry> registry_;
    std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace pgelect
