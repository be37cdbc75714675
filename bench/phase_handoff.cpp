// Phase 4: graceful handoff, from the start of Lock::release() to the return of
// acquire() in a contender blocked on another client and thread.
//
// pgelect: the contender gets 20-50 ms (random) to reach its wait and must not have
// returned; 3 warm-up trials are dropped.  Baseline: the pglock replay's waiter retries
// the upsert once per lease (pglock sleeps leaseDuration after ErrNotAcquired), and the
// release lands at a uniformly random point of that sleep; trials run in parallel
// batches of 5 pairs (each on its own connections and lock name) so that the 1 s lease
// does not dominate the run time.
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "baseline.hpp"
#include "phases.hpp"
#include "stats.hpp"

namespace bench {
namespace {

void handoff_pgelect(const Config& cfg) {
    const std::string table = "bench_handoff";
    pgelect::LockClient holder(cfg.dsn, client_options(table, pgelect::LeaseTiming{}));
    pgelect::LockClient contender(cfg.dsn, client_options(table, pgelect::LeaseTiming{}));
    holder.create_table();
    std::mt19937 rng(99);
    std::vector<double> samples;
    int failures = 0;
    const int warmup = 3;
    for (int trial = 0; trial < cfg.handoff_trials + warmup; ++trial) {
        const std::string name = "handoff-" + std::to_string(trial);
        const std::string what = "phase 4 trial " + std::to_string(trial) + ": ";
        try {
            pgelect::Lock held = holder.acquire(name);
            std::stop_source stop;
            auto fut = contend(contender, name, stop);
            StopOnExit guard{stop};
            // Let the contender reach its wait (first attempt, poll, LISTEN wait).
            std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(20, 50)(rng)));
            if (fut.wait_for(0s) == std::future_status::ready) {
                ++failures;
                try {
                    fut.get();
                    g_results.error(what + "contender acquired a held lock");
                } catch (const std::exception& e) {
                    g_results.error(what + "contender failed: " + e.what());
                }
                continue;
            }
            const auto t0 = Clock::now();
            held.release();
            const auto t1 = await_contender(fut, stop, t0 + 5s);
            if (!t1) {
                ++failures;
                g_results.error(what + "contender not woken within 5 s");
            } else if (trial >= warmup) {
                samples.push_back(ms_between(t0, *t1));
            }
        } catch (const std::exception& e) {
            ++failures;
            g_results.error(what + e.what());
        }
    }
    record_trials("handoff", "_ms", samples, failures);
    progress("  pgelect " + std::to_string(samples.size()) + " trials: p50 " + fmt(percentile(samples, 0.5), 3) +
             " ms, p99 " + fmt(percentile(samples, 0.99), 3) + " ms");
    holder.drop_table();
}

// One baseline trial: milliseconds from the holder's release to the waiter holding.
double handoff_baseline_trial(const Config& cfg, const PglockSql& psql, int trial) {
    const auto lease = cfg.baseline_lease;
    const std::string name = "handoff-" + std::to_string(trial);
    PglockReplay holder(cfg, psql, "pglock-holder-" + std::to_string(trial));
    PglockReplay waiter(cfg, psql, "pglock-waiter-" + std::to_string(trial));
    std::mt19937 rng(7 + trial);
    auto rvn = holder.try_acquire(name);
    if (!rvn) throw std::runtime_error("pglock replay holder could not acquire");
    std::atomic<bool> stop{false};
    auto fut = std::async(std::launch::async, [&]() -> Clock::time_point {
        const auto give_up = Clock::now() + lease * 3 + 2s;
        while (Clock::now() < give_up && !stop.load()) {
            if (auto mine = waiter.try_acquire(name)) {
                const auto t = Clock::now();
                waiter.release(name, *mine);
                return t;
            }
            const auto wake = Clock::now() + lease;
            while (Clock::now() < wake && !stop.load()) std::this_thread::sleep_for(1ms);
        }
        throw std::runtime_error("pglock replay waiter gave up");
    });
    FlagOnExit guard{stop};
    std::this_thread::sleep_for(20ms + milliseconds(std::uniform_int_distribution<int>(0, static_cast<int>(lease.count()))(rng)));
    const auto t0 = Clock::now();
    if (!holder.release(name, *rvn)) throw std::runtime_error("pglock replay holder lost its lock");
    if (fut.wait_until(t0 + lease * 2 + 2s) != std::future_status::ready) stop.store(true);
    return ms_between(t0, fut.get());
}

void handoff_baseline(const Config& cfg, Admin& admin) {
    PglockTable table(admin, "bench_handoff_pglock");
    g_results.num("baseline_handoff_lease_ms", static_cast<double>(cfg.baseline_lease.count()));
    std::vector<double> samples;
    int failures = 0;
    for (int first = 0; first < cfg.baseline_handoff_trials; first += 5) {
        std::vector<std::future<double>> batch;
        for (int t = first; t < std::min(first + 5, cfg.baseline_handoff_trials); ++t) {
            batch.push_back(std::async(std::launch::async, handoff_baseline_trial, std::cref(cfg), std::cref(table.sql()), t));
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
            try {
                samples.push_back(batch[i].get());
            } catch (const std::exception& e) {
                ++failures;
                g_results.error("phase 4 baseline trial " + std::to_string(first + i) + ": " + e.what());
            }
        }
    }
    record_trials("baseline_handoff", "_ms", samples, failures);
    progress("  pglock replay " + std::to_string(samples.size()) + " trials (lease " +
             std::to_string(cfg.baseline_lease.count()) + " ms): p50 " + fmt(percentile(samples, 0.5), 1) + " ms");
}

}  // namespace

void phase_handoff(const Config& cfg, Admin& admin) {
    progress("phase 4: graceful handoff");
    handoff_pgelect(cfg);
    handoff_baseline(cfg, admin);
}

}  // namespace bench
