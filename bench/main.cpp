// pgelect_bench: measures pgelect against a replay of pglock's statement sequence
// (cirello.io/pglock) on the same PostgreSQL server, in one run.
//
//   pgelect_bench [--quick] [--only 1,2,3,4,5] [--dsn DSN]
//
// bench/run builds it and runs it on a throwaway server; see docs/performance.md.
// The DSN defaults to $PGELECT_TEST_DSN (set by scripts/with-postgres), else
// libpq's PG* environment.  Progress goes to stderr; stdout gets a table, the
// server settings and, as its very last line, one JSON object with every number.
// Targets are reported as PASS/MISS; a miss never fails the run.  Exit status is
// non-zero only when the program itself could not run (bad arguments, no server,
// global time limit hit).
//
// Phases (each on freshly created tables, dropped when the phase ends), in phases.hpp:
//   1 uncontended acquire+release cycles/s, 1 and 4 threads, pgelect vs replay
//   2 renewal cost with N = 1, 100, 1000, 10000 held locks
//   3 crash failover time / lease
//   4 graceful handoff latency (release -> waiting contender holds)
//   5 100 waiting contenders: statements/s and extra WAL bytes/s they cause
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "admin.hpp"
#include "phases.hpp"
#include "report.hpp"
#include "stats.hpp"

namespace {

using namespace bench;

std::map<std::string, std::string> g_settings;
std::mutex g_print_mu;  // the report is printed once (by main or by the watchdog)
bool g_printed = false;

void finish() {
    std::lock_guard lk(g_print_mu);
    if (g_printed) return;
    g_printed = true;
    print_report(g_results, g_settings);
}

// Server settings, the optional extensions, then the selected phases.  Throws only if
// the server cannot be reached.
void run_phases(const Config& cfg, const std::string& only) {
    Admin admin(cfg);
    for (const char* s : {"server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers"}) {
        g_settings[s] = admin.show(s);
    }
    g_results.str("fsync", g_settings["fsync"]);
    g_results.str("synchronous_commit", g_settings["synchronous_commit"]);
    const bool pss = admin.pss_available();
    if (!pss) g_results.error("pg_stat_statements is not available: statement counts are missing");
    try {
        admin.q("CREATE EXTENSION IF NOT EXISTS pg_walinspect");
    } catch (const std::exception&) {
        // the breakdown of WAL records is optional
    }
    g_results.num("cpus", std::thread::hardware_concurrency());
    progress(std::string("mode ") + (cfg.quick ? "quick" : "full") + ", server " + g_settings["server_version"]);

    const std::pair<char, std::function<void()>> phases[] = {
        {'1', [&] { phase_cycles(cfg, admin, pss); }},
        {'2', [&] { phase_renewal(cfg, admin, pss); }},
        {'3', [&] { phase_failover(cfg); }},
        {'4', [&] { phase_handoff(cfg, admin); }},
        {'5', [&] { phase_waiters(cfg, admin, pss); }},
    };
    for (const auto& [id, fn] : phases) {
        if (!only.empty() && only.find(id) == std::string::npos) continue;
        const std::string label = std::string("phase ") + id;
        try {
            fn();
        } catch (const std::exception& e) {
            g_results.error(label + " aborted: " + e.what());
            progress(label + " aborted: " + e.what());
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    std::string only;  // phases to run, e.g. "1,5" (default: all)
    std::string dsn;
    if (const char* d = std::getenv("PGELECT_TEST_DSN")) dsn = d;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--quick") {
            quick = true;
        } else if (a == "--only" && i + 1 < argc) {
            only = argv[++i];
        } else if (a == "--dsn" && i + 1 < argc) {
            dsn = argv[++i];
        } else if (a == "-h" || a == "--help") {
            std::printf("usage: pgelect_bench [--quick] [--only 1,2,3,4,5] [--dsn DSN]\n");
            return 0;
        } else {
            std::fprintf(stderr, "pgelect_bench: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    Config cfg = make_config(quick);
    cfg.dsn = dsn;
    const auto started = Clock::now();
    g_results.str("mode", quick ? "quick" : "full");

    // Watchdog: whatever happens, a report and the JSON line appear before the limit.
    std::mutex wd_mu;
    std::condition_variable wd_cv;
    bool done = false;
    std::thread watchdog([&] {
        std::unique_lock lk(wd_mu);
        const auto limit =
            started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.global_limit_s));
        if (wd_cv.wait_until(lk, limit, [&] { return done; })) return;
        g_results.error("global time limit of " + fmt(cfg.global_limit_s, 0) + " s exceeded; results are partial");
        g_results.num("elapsed_s", s_between(started, Clock::now()));
        finish();
        std::_Exit(3);
    });

    int rc = 0;
    try {
        run_phases(cfg, only);
    } catch (const std::exception& e) {
        g_results.error(std::string("cannot run: ") + e.what());
        rc = 1;
    }
    g_results.num("elapsed_s", s_between(started, Clock::now()));
    {
        std::lock_guard lk(wd_mu);
        done = true;
    }
    wd_cv.notify_all();
    watchdog.join();
    finish();
    return rc;
}
