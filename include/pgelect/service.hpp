// Runs the election groups of a configuration: one LockClient, one Elector per
// group and, optionally, a Prometheus endpoint.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <prometheus/registry.h>

#include "pgelect/config.hpp"
#include "pgelect/elector.hpp"
#include "pgelect/lock_client.hpp"

namespace pgelect {

namespace detail {
class ServiceImpl;
}

// An ElectionService owns a LockClient, one Elector per configured group and
// the metrics exposer.  Attach callbacks by group name before start().  All
// methods may be called from any thread; callbacks run on each group's
// elector thread (see docs/elector.md for their contract).
class ElectionService {
public:
    // Loads the YAML file (ConfigError on any problem) and builds the service.
    static std::unique_ptr<ElectionService> from_yaml(const std::string& path);
    // Builds the service; InvalidArgumentError for bad settings.  Nothing
    // connects to the database before start(); the metrics endpoint (if
    // configured) listens from construction.
    explicit ElectionService(Config config);
    // Stops (see stop()).
    ~ElectionService();
    ElectionService(const ElectionService&) = delete;
    ElectionService& operator=(const ElectionService&) = delete;

    // Callbacks by group name; InvalidArgumentError naming the known groups
    // when `group` is not configured.
    void on_become_leader(const std::string& group, std::function<void(const Leadership&)> fn);
    void on_lost_leadership(const std::string& group, std::function<void(const LossInfo&)> fn);
    void on_leader_changed(const std::string& group,
                           std::function<void(const std::optional<LeaderInfo>&)> fn);

    // Creates the lock table if configured (database.create_table), then starts
    // every elector.  Throws the table creation's error (e.g. UnavailableError).
    void start();
    // Stops every elector (each resigns if leading) and the exposer.  Idempotent.
    void stop();
    // start(), then waits until SIGINT or SIGTERM (when handle_signals) or
    // request_stop(), then stop().  Returns 0.
    int run(bool handle_signals = true);
    // Makes run() return; safe from any thread (not from a signal handler).
    void request_stop();

    Elector& elector(const std::string& group);
    LockClient& client();
    prometheus::Registry& registry();
    const Config& config() const;
    // "http://host:port/path" of the metrics endpoint, or empty when disabled.
    std::string metrics_url() const;

private:
    std::unique_ptr<detail::ServiceImpl> impl_;
};

}  // namespace pgelect
