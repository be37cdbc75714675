// The split-brain checker's timing, shared by the test and its nodes.  Sized
// for a loaded 2-core machine (two CPU-bound processes beside the suite and
// five nodes sampling every millisecond).  There a new server connection
// takes 0.6 s on average and up to 1.3 s (pgbench -C), so a renewal that
// needs one can miss a deadline of 1 or 2 s: with 700 ms and 2 s renew
// deadlines most terms ended by their deadline within seconds, and the group
// churned instead of recovering from the injected faults.
#pragma once

#include <chrono>
#include <cstdlib>

namespace pgelect::test::splitbrain {

using namespace std::chrono_literals;

inline constexpr auto kLease = 4000ms;
inline constexpr auto kRenewDeadline = 3000ms;
inline constexpr auto kHeartbeat = 400ms;
inline constexpr auto kRetry = 200ms;
inline constexpr auto kStatementTimeout = 1500ms;
inline constexpr auto kMaxBackoff = 600ms;
// How long a term's stop callback sleeps in the slow_stop_callback fault.
inline constexpr auto kSlowStopCallback = 3s;
// How long a fault that holds something back (SIGSTOP, held replies, a row
// lock) lasts: longer than a lease, so a successor can take over meanwhile.
inline constexpr auto kHeldFault = kLease + kLease / 2;

// PGELECT_SPLITBRAIN_SCALE=N: leases and renew deadlines N times longer (the
// failover checker: a holder whose acquisition was lost with the old primary
// must still believe when the promoted server is up, so that only the
// failover quarantine keeps the two apart).  Read by the nodes and the test.
inline int timing_scale() {
    const char* s = std::getenv("PGELECT_SPLITBRAIN_SCALE");
    const int n = s ? std::atoi(s) : 1;
    return n >= 1 ? n : 1;
}

}  // namespace pgelect::test::splitbrain
