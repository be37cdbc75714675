#include "pgelect/options.hpp"

#include <string>

#include "lock/names.hpp"
#include "pgelect/errors.hpp"

namespace pgelect {
namespace {
std::string ms(Duration d) { return std::to_string(d.count()) + "ms"; }
}  // namespace

void validate_timing(const LeaseTiming& t) {
    auto fail = [](const std::string& rule) {
        throw InvalidArgumentError("invalid lease timing: " + rule);
    };
    if (t.lease_duration <= Duration::zero()) {
        fail("lease_duration must be positive (got " + ms(t.lease_duration) + ")");
    }
    if (t.heartbeat_interval < Duration::zero()) {
        fail("heartbeat_interval must be positive, or 0 to turn heartbeats off (got " +
             ms(t.heartbeat_interval) + ")");
    }
    if (t.heartbeat_interval * 2 > t.lease_duration) {
        fail("heartbeat_interval (" + ms(t.heartbeat_interval) +
             ") must be at most half of lease_duration (" + ms(t.lease_duration) + ")");
    }
    if (t.renew_deadline <= t.heartbeat_interval) {
        fail("renew_deadline (" + ms(t.renew_deadline) + ") must be greater than heartbeat_interval (" +
             ms(t.heartbeat_interval) + ")");
    }
    if (t.renew_deadline >= t.lease_duration) {
        fail("renew_deadline (" + ms(t.renew_deadline) + ") must be less than lease_duration (" +
             ms(t.lease_duration) + ")");
    }
    if (t.retry_interval <= Duration::zero()) {
        fail("retry_interval must be positive (got " + ms(t.retry_interval) + ")");
    }
}

void validate_options(const LockClientOptions& o) {
    detail::parse_table_name(o.table);
    if (!o.owner.empty()) detail::validate_owner(o.owner);
    validate_timing(o.timing);
    if (o.pool_size == 0) throw InvalidArgumentError("invalid options: pool_size must be at least 1");
    if (o.statement_timeout <= Duration::zero()) {
        throw InvalidArgumentError("invalid options: statement_timeout must be positive (got " +
                                   ms(o.statement_timeout) + ")");
    }
    if (o.connect_timeout < std::chrono::seconds(2)) {
        throw InvalidArgumentError("invalid options: connect_timeout must be at least 2s (got " +
                                   ms(o.connect_timeout) + "); libpq counts it in whole seconds");
    }
    if (o.serialization_retries < 0) {
        throw InvalidArgumentError("invalid options: serialization_retries must not be negative");
    }
}

}  // namespace pgelect
