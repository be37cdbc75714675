// Phase 3: crash failover.  The holder renews by hand (heartbeat_interval 0) every
// 50 ms, 3-6 times, then "crashes": no more renewals, no release, its handle kept until
// the contender holds.  Measured: from the start of the holder's last successful
// renewal to the contender (another client and thread, waiting in acquire() since just
// after the holder acquired) holding the lock, over the lease.  Trial 0 is warm-up.
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "phases.hpp"
#include "stats.hpp"

namespace bench {

void phase_failover(const Config& cfg) {
    progress("phase 3: crash failover");
    const auto lease = 300ms, deadline = 200ms, hb = 50ms, retry = 20ms;
    const std::string table = "bench_failover";
    pgelect::LockClient holder(cfg.dsn, client_options(table, timing(lease, deadline, 0ms, retry)));
    pgelect::LockClient contender(cfg.dsn, client_options(table, timing(lease, deadline, hb, retry)));
    holder.create_table();
    g_results.num("failover_lease_ms", static_cast<double>(lease.count()));
    g_results.num("failover_retry_ms", static_cast<double>(retry.count()));
    g_results.num("failover_target_over_lease",
                  1.0 + static_cast<double>(retry.count()) / static_cast<double>(lease.count()) + 0.05);

    std::mt19937 rng(1234);
    std::vector<double> ratios;
    int failures = 0;
    for (int trial = 0; trial < cfg.failover_trials + 1; ++trial) {  // trial 0: warm-up
        const std::string name = "failover-" + std::to_string(trial);
        const std::string what = "phase 3 trial " + std::to_string(trial) + ": ";
        try {
            pgelect::Lock held = holder.acquire(name);
            Clock::time_point last_ok = Clock::now();
            std::stop_source stop;
            auto fut = contend(contender, name, stop);
            StopOnExit guard{stop};
            std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(0, 20)(rng)));
            const int beats = std::uniform_int_distribution<int>(3, 6)(rng);
            bool lost = false;
            for (int b = 0; b < beats && !lost; ++b) {
                const auto s = Clock::now();
                try {
                    holder.heartbeat(held);
                    last_ok = s;
                } catch (const std::exception& e) {
                    lost = true;
                    g_results.error(what + "holder heartbeat failed: " + e.what());
                }
                if (!lost) std::this_thread::sleep_until(s + hb);
            }
            // Crash.  The handle stays alive until the contender holds (its renew deadline
            // marks it lost locally; no statement is sent).
            const auto got = await_contender(fut, stop, last_ok + lease * 4 + 2s);
            if (!got) {
                ++failures;
                g_results.error(what + "contender did not take over in time");
            } else if (lost) {
                ++failures;
            } else if (*got < last_ok) {
                ++failures;
                g_results.error(what + "contender acquired before the holder's last renewal");
            } else if (trial > 0) {
                ratios.push_back(ms_between(last_ok, *got) / static_cast<double>(lease.count()));
            }
        } catch (const std::exception& e) {
            ++failures;
            g_results.error(what + e.what());
        }
    }
    record_trials("failover", "_over_lease", ratios, failures);
    progress("  " + std::to_string(ratios.size()) + " trials: p50 " + fmt(percentile(ratios, 0.5), 3) + " p99 " +
             fmt(percentile(ratios, 0.99), 3) + " x lease");
    holder.drop_table();
}

}  // namespace bench
