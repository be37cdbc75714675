#include "pgelect/options.hpp"

#include <algorithm>
#include <string>

#include "lock/names.hpp"
#include "lock/timing_rules.hpp"
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

namespace detail {

Duration statement_grace(Duration statement_timeout) {
    return std::clamp<Duration>(statement_timeout / 4, Duration(1), std::chrono::seconds(1));
}

Duration renewal_timeout(const LockClientOptions& o) {
    if (o.renewal_timeout > Duration::zero()) return o.renewal_timeout;
    // Two thirds of what is left after a heartbeat and a retry pause: the
    // timeout plus its grace (a quarter) then leaves room for the retry.
    const Duration budget = o.timing.renew_deadline - o.timing.heartbeat_interval -
                            renewal_retry_pause(o.timing);
    return std::clamp<Duration>(budget * 2 / 3, Duration(1), o.statement_timeout);
}

Duration renewal_retry_pause(const LeaseTiming& t) {
    return std::clamp<Duration>(t.heartbeat_interval / 4, std::chrono::milliseconds(20),
                                std::chrono::seconds(1));
}

void validate_renewal_fits(const LeaseTiming& t, const LockClientOptions& o) {
    if (t.heartbeat_interval <= Duration::zero()) return;
    const Duration timeout = renewal_timeout(o);
    const Duration grace = statement_grace(timeout);
    const Duration pause = renewal_retry_pause(t);
    const Duration needed = t.heartbeat_interval + timeout + grace + pause;
    if (needed < t.renew_deadline) return;
    throw InvalidArgumentError(
        "invalid lease timing: renew_deadline (" + ms(t.renew_deadline) +
        ") leaves no time to retry a renewal whose reply is lost: heartbeat_interval (" +
        ms(t.heartbeat_interval) + ") + renewal statement timeout (" + ms(timeout) +
        ") + its grace (" + ms(grace) + ") + retry pause (" + ms(pause) + ") = " + ms(needed) +
        "; raise renew_deadline, or lower " +
        (o.renewal_timeout > Duration::zero() ? std::string("renewal_timeout")
                                              : std::string("heartbeat_interval")));
}

}  // namespace detail

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
    if (o.renewal_timeout < Duration::zero()) {
        throw InvalidArgumentError("invalid options: renewal_timeout must be positive, or 0 to derive it (got " +
                                   ms(o.renewal_timeout) + ")");
    }
    detail::validate_renewal_fits(o.timing, o);
    if (o.serialization_retries < 0) {
        throw InvalidArgumentError("invalid options: serialization_retries must not be negative");
    }
}

}  // namespace pgelect
