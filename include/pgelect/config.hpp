// Configuration of election groups, loaded from YAML (see docs/configuration.md).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "pgelect/elector.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/options.hpp"

namespace pgelect {

// A configuration problem.  what() reads "<file>:<line>:<column>: <problem>";
// kind() is ErrorKind::invalid_argument.  Loading throws nothing else.
class ConfigError : public InvalidArgumentError {
public:
    ConfigError(std::string file, int line, int column, const std::string& problem);
    const std::string& file() const { return file_; }
    int line() const { return line_; }      // 1-based; 0 when unknown
    int column() const { return column_; }  // 1-based; 0 when unknown

private:
    std::string file_;
    int line_;
    int column_;
};

struct DatabaseConfig {
    // libpq connection string or URI; empty: libpq's PG* environment.
    std::string dsn{};
    std::string table{"locks"};
    std::size_t pool_size{4};
    Duration statement_timeout{std::chrono::seconds(5)};
    // Create the lock table (and add missing columns) at start.
    bool create_table{true};
    // "session" (direct, or a pooler in session mode) or "transaction" (a
    // pooler in transaction mode); see LockClientOptions::pooling.
    Pooling pooling{Pooling::session};
    // LockClientOptions::listen_dsn.
    std::string listen_dsn{};
};

struct GroupConfig {
    std::string name{};
    std::string data{};
    LeaseTiming timing{};           // the defaults, overridden per key by the group
    bool release_on_stop{true};
};

struct MetricsConfig {
    // host:port the exposer listens on; empty disables it.
    std::string listen{"127.0.0.1:9464"};
    std::string path{"/metrics"};
};

struct Config {
    DatabaseConfig database{};
    // Identity of every elector of this process; empty: "<hostname>-<pid>-<random>".
    std::string identity{};
    LeaseTiming defaults{};
    bool release_on_stop{true};
    std::vector<GroupConfig> groups{};
    MetricsConfig metrics{};

    LockClientOptions lock_client_options() const;
    ElectorOptions elector_options(const GroupConfig& group) const;
};

// Reads and validates a YAML file; ${VAR} and ${VAR:-default} are expanded
// from the environment.  Throws ConfigError only.
Config load_config(const std::string& path);
// The same for YAML text; `source` names it in errors.
Config parse_config(const std::string& yaml, const std::string& source = "<config>");

// "250ms", "15s", "2m", "1h" (also "1.5s").  Throws InvalidArgumentError.
Duration parse_duration(std::string_view text);

}  // namespace pgelect
