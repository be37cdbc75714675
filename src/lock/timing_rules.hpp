// How long a renewal may take, and the rule that a renewal whose reply is lost
// is retried, and answered, before the holder's renew deadline.
#pragma once

#include "pgelect/options.hpp"

namespace pgelect::detail {

// How long after its statement timeout a silent connection is cut off (the
// server answers a timed-out statement with an error well within this).
Duration statement_grace(Duration statement_timeout);
// statement_timeout of the renewal connection (LockClientOptions::renewal_timeout,
// or derived from the client's timing when that is 0).
Duration renewal_timeout(const LockClientOptions& options);
// The pause before a failed renewal is tried again.
Duration renewal_retry_pause(const LeaseTiming& timing);
// Throws InvalidArgumentError unless heartbeat + the renewal's limit (timeout
// plus grace) + the retry pause < renew deadline, naming what to change.
// Timings without automatic heartbeats are not checked.
void validate_renewal_fits(const LeaseTiming& timing, const LockClientOptions& options);

}  // namespace pgelect::detail
