// How long the current term can be trusted, as far as `pgelect run` can prove
// from outside the library: a lower bound on the lease's valid_until, in
// CLOCK_BOOTTIME, for the guard's deadline (child.hpp).
//
// The holder trusts its lease until (start of its last successful renewal) +
// renew_deadline.  The public API reports a renewal only after it finished
// (LockClient::renewal_finished, on the renewal thread), so its start is bounded
// from below by events that must precede it:
//   - the previous report: renewals run one after another on one thread, and
//     each report is emitted before the next renewal starts;
//   - the acquisition report (acquire_attempted, acquired): a new lock is
//     handed to the renewal thread only after it.
// `report time - elapsed` is not a lower bound (it is measured after the
// library takes the renewal's start), so it is not used.  The bound is about
// one heartbeat earlier than the library's own deadline.
//
// For the first moments of a term, before its first renewal, Elector::healthy()
// gives one: healthy at t means t - last renewal <= 2 heartbeats, so the lease
// is trusted at least until t + renew_deadline - 2 heartbeats.
//
// Thread-safe: acquired() and renewed() are called from the library's threads.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "cli/child.hpp"
#include "pgelect/lock_client.hpp"

namespace pgelect::cli {

class LeaseBound {
  public:
    LeaseBound(std::string group, Duration renew_deadline)
        : group_(std::move(group)), renew_deadline_ns_(to_ns(renew_deadline)) {}

    // acquire_attempted(group, acquired) was emitted at `now`.
    void acquired(BootTime now) {
        std::lock_guard lk(mu_);
        floor_ = now;
        bound_.reset();
    }

    // renewal_finished was emitted at `now`.  Returns the new bound if this
    // report extends the group's lease.
    std::optional<BootTime> renewed(const RenewalReport& report, BootTime now) {
        std::lock_guard lk(mu_);
        const std::optional<BootTime> started_after = later(previous_report_, floor_);
        previous_report_ = now;
        const bool extends =
            report.ok && std::find(report.still_held.begin(), report.still_held.end(), group_) !=
                             report.still_held.end();
        if (!extends || !started_after) return std::nullopt;
        bound_ = std::max(bound_.value_or(0), *started_after + renew_deadline_ns_);
        return bound_;
    }

    // The bound from renewals since the last acquisition, if there was one.
    std::optional<BootTime> current() const {
        std::lock_guard lk(mu_);
        return bound_;
    }

    static std::int64_t to_ns(Duration d) {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    }

  private:
    static std::optional<BootTime> later(std::optional<BootTime> a, std::optional<BootTime> b) {
        if (!a) return b;
        if (!b) return a;
        return std::max(*a, *b);
    }

    // constant after construction
    const std::string group_;
    const std::int64_t renew_deadline_ns_;

    mutable std::mutex mu_;
    std::optional<BootTime> previous_report_;  // guarded by mu_
    std::optional<BootTime> floor_;            // guarded by mu_: the last acquisition report
    std::optional<BootTime> bound_;            // guarded by mu_
};

}  // namespace pgelect::cli
