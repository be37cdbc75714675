// The five phases of pgelect_bench.  Each creates its own tables, drops them when it
// ends and stores its numbers in g_results (stats.hpp); `pss` says whether
// pg_stat_statements is available for statement counts.
#pragma once

#include "admin.hpp"
#include "common.hpp"

namespace bench {

// 1: uncontended acquire+release cycles/s, 1 and 4 threads, pgelect vs the pglock replay.
void phase_cycles(const Config& cfg, Admin& admin, bool pss);
// 2: renewal statements and time per heartbeat tick with N = 1, 100, 1000, 10000 held locks.
void phase_renewal(const Config& cfg, Admin& admin, bool pss);
// 3: crash failover time over the lease.
void phase_failover(const Config& cfg);
// 4: graceful handoff latency (release -> the waiting contender holds).
void phase_handoff(const Config& cfg, Admin& admin);
// 5: 100 waiting contenders: their statements/s and the WAL bytes/s they add.
void phase_waiters(const Config& cfg, Admin& admin, bool pss);

}  // namespace bench
