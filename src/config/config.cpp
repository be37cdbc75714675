// ConfigError and the mapping of a Config onto the client and elector options.
#include "pgelect/config.hpp"

namespace pgelect {

ConfigError::ConfigError(std::string file, int line, int column, const std::string& problem)
    : InvalidArgumentError(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                           problem),
      file_(std::move(file)),
      line_(line),
      column_(column) {}

LockClientOptions Config::lock_client_options() const {
    LockClientOptions options;
    options.table = database.table;
    options.owner = identity;
    options.timing = defaults;
    options.pool_size = database.pool_size;
    options.statement_timeout = database.statement_timeout;
    options.pooling = database.pooling;
    options.listen_dsn = database.listen_dsn;
    return options;
}

ElectorOptions Config::elector_options(const GroupConfig& group) const {
    ElectorOptions options;
    options.group = group.name;
    options.identity = identity;
    options.data = group.data;
    options.timing = group.timing;
    options.release_on_stop = group.release_on_stop;
    return options;
}

}  // namespace pgelect
