#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "common.hpp"

namespace bench {
namespace {

struct Row {
    std::string metric, pgelect, baseline, target, status;
};

std::string pass(bool ok, double v) { return !std::isfinite(v) ? "MISS (no data)" : ok ? "PASS" : "MISS"; }

std::vector<Row> cycle_rows(const Results& r) {
    auto g = [&](const std::string& k) { return r.get(k); };
    std::vector<Row> rows;
    const double ratio1 = g("cycle_ratio_1t");
    rows.push_back({"cycles/s, 1 thread", fmt(g("cycles_per_s_1t"), 0), fmt(g("baseline_cycles_per_s_1t"), 0), "-", ""});
    rows.push_back({"cycle_ratio_1t (pgelect/baseline)", fmt(ratio1), "", ">= 1.3", pass(ratio1 >= 1.3, ratio1)});
    rows.push_back({"cycles/s, 4 threads", fmt(g("cycles_per_s_4t"), 0), fmt(g("baseline_cycles_per_s_4t"), 0), "-", ""});
    rows.push_back({"cycle_ratio_4t (pgelect/baseline)", fmt(g("cycle_ratio_4t")), "", "-", ""});
    auto pair = [&](const std::string& key) { return fmt(g(key + "_1t")) + " / " + fmt(g(key + "_4t")); };
    rows.push_back({"statements per cycle, 1 / 4 threads", pair("pgelect_statements_per_cycle"), "3 / 3", "-", ""});
    const bool diag = std::isfinite(g("diag_pgelect_sql_cycles_per_s_1t"));
    rows.push_back({"client context switches per cycle, 1 / 4 threads", pair("client_switches_per_cycle"),
                    pair("baseline_client_switches_per_cycle"), "-",
                    diag ? "pgelect SQL " + pair("diag_pgelect_sql_client_switches_per_cycle") : ""});
    if (diag) {
        rows.push_back({"diag: pgelect SQL prepared (as library), 1t / 4t",
                        fmt(g("diag_pgelect_sql_cycles_per_s_1t"), 0) + " / " + fmt(g("diag_pgelect_sql_cycles_per_s_4t"), 0),
                        "", "-",
                        "library/SQL " + fmt(g("diag_library_over_sql_1t")) + " / " + fmt(g("diag_library_over_sql_4t")) +
                            "; SQL/baseline " + fmt(g("diag_pgelect_sql_over_baseline_1t")) + " / " +
                            fmt(g("diag_pgelect_sql_over_baseline_4t"))});
        rows.push_back({"diag: pglock real tx sequence (9 round trips), 1t", "", fmt(g("diag_pglock_tx_cycles_per_s_1t"), 0),
                        "-", "pgelect/it " + fmt(g("diag_cycle_ratio_1t_vs_pglock_tx"))});
    }
    return rows;
}

std::vector<Row> renewal_rows(const Results& r) {
    auto g = [&](const std::string& k) { return r.get(k); };
    std::vector<Row> rows;
    for (int n : {1, 100, 1000, 10000}) {
        const std::string s = "_" + std::to_string(n);
        const double spt = g("renew_statements_per_tick" + s);
        rows.push_back({"renew statements/tick, N=" + std::to_string(n), fmt(spt),
                        fmt(g("baseline_renew_statements_per_tick" + s), 0), "1", pass(spt <= 1.05, spt)});
    }
    for (int n : {1, 100, 1000, 10000}) {
        const std::string s = "_" + std::to_string(n);
        const double ms = g("renew_tick_ms" + s);
        rows.push_back({"renew tick ms (client), N=" + std::to_string(n), fmt(ms, 3), fmt(g("baseline_renew_tick_ms" + s), 3),
                        n == 10000 ? "< 150" : "-", n == 10000 ? pass(ms < 150, ms) : ""});
    }
    rows.push_back({"renew tick ms (server mean), N=10000", fmt(g("renew_server_ms_10000"), 3), "", "-", ""});
    const double speed = g("renew_speedup_10000");
    rows.push_back({"renew speedup at N=10000 (baseline/pgelect)", fmt(speed, 1), "", ">= 20", pass(speed >= 20, speed)});
    return rows;
}

std::vector<Row> latency_and_waiter_rows(const Results& r) {
    auto g = [&](const std::string& k) { return r.get(k); };
    std::vector<Row> rows;
    const double fo99 = g("failover_p99_over_lease"), fo_target = g("failover_target_over_lease");
    rows.push_back({"failover p50 / lease (" + fmt(g("failover_trials"), 0) + " trials)", fmt(g("failover_p50_over_lease"), 3),
                    "", "-", ""});
    rows.push_back({"failover p99 / lease", fmt(fo99, 3), "", "<= " + fmt(fo_target, 3), pass(fo99 <= fo_target, fo99)});
    const double h50 = g("handoff_p50_ms"), h99 = g("handoff_p99_ms");
    rows.push_back({"handoff p50 ms (" + fmt(g("handoff_trials"), 0) + " / " + fmt(g("baseline_handoff_trials"), 0) + " trials)",
                    fmt(h50, 3), fmt(g("baseline_handoff_p50_ms"), 1), "< 3", pass(h50 < 3, h50)});
    rows.push_back({"handoff p99 ms", fmt(h99, 3), fmt(g("baseline_handoff_p99_ms"), 1), "< 20", pass(h99 < 20, h99)});
    rows.push_back({"waiters: statements/s (" + fmt(g("waiters"), 0) + " waiters)", fmt(g("waiter_statements_per_s"), 1), "",
                    "-", ""});
    rows.push_back({"waiters: write attempts/s", fmt(g("waiter_write_attempts_per_s"), 2), "", "-", ""});
    rows.push_back({"waiters: holder renewals/s", fmt(g("holder_statements_per_s"), 1), "", "-", ""});
    rows.push_back({"holder renewal WAL bytes/s", fmt(g("holder_wal_bytes_per_s"), 1), "", "-", ""});
    rows.push_back({"holder + waiters WAL bytes/s", fmt(g("with_waiters_wal_bytes_per_s"), 1), "", "-", ""});
    const double extra = g("waiter_extra_wal_bytes_per_s"), holder_wal = g("holder_wal_bytes_per_s");
    rows.push_back({"waiter extra WAL bytes/s", fmt(extra, 1), "", "< " + fmt(0.01 * holder_wal, 1) + " (1%)",
                    pass(extra < 0.01 * holder_wal, extra)});
    rows.push_back({"WAL records of non-holder transactions (window B)", fmt(g("waiter_tx_wal_records"), 0), "", "-", ""});
    return rows;
}

void print_table(const std::vector<Row>& rows) {
    std::size_t w[4] = {6, 7, 8, 6};
    for (const auto& row : rows) {
        w[0] = std::max(w[0], row.metric.size());
        w[1] = std::max(w[1], row.pgelect.size());
        w[2] = std::max(w[2], row.baseline.size());
        w[3] = std::max(w[3], row.target.size());
    }
    auto line = [&](const Row& row) {
        std::printf("%-*s  %*s  %*s  %-*s  %s\n", static_cast<int>(w[0]), row.metric.c_str(), static_cast<int>(w[1]),
                    row.pgelect.c_str(), static_cast<int>(w[2]), row.baseline.c_str(), static_cast<int>(w[3]),
                    row.target.c_str(), row.status.c_str());
    };
    std::printf("\n");
    line({"metric", "pgelect", "baseline", "target", "result"});
    line({std::string(w[0], '-'), std::string(w[1], '-'), std::string(w[2], '-'), std::string(w[3], '-'), "------"});
    for (const auto& row : rows) line(row);
}

}  // namespace

void print_report(const Results& r, const std::map<std::string, std::string>& settings) {
    std::vector<Row> rows = cycle_rows(r);
    for (auto&& part : {renewal_rows(r), latency_and_waiter_rows(r)}) rows.insert(rows.end(), part.begin(), part.end());
    print_table(rows);
    std::printf("\nbaseline = pglock's statement sequence replayed through libpqxx, unprepared as in pglock; "
                "baseline handoff waiter retries every %s ms (its lease)\n",
                fmt(r.get("baseline_handoff_lease_ms"), 0).c_str());
    for (const char* k : {"wal_records_holder_only_window1", "wal_records_with_waiters", "wal_records_holder_only_window2"}) {
        const std::string v = r.get_str(k);
        if (!v.empty()) std::printf("%s: %s\n", k, v.c_str());
    }
    const auto errs = r.errors();
    if (!errs.empty()) {
        std::printf("\nerrors (%zu):\n", errs.size());
        for (const auto& e : errs) std::printf("  %s\n", e.c_str());
    }
    std::printf("\nserver settings:");
    for (const auto& [k, v] : settings) std::printf(" %s=%s", k.c_str(), v.c_str());
    std::printf("\n%s\n", r.json().c_str());
    std::fflush(stdout);
}

}  // namespace bench
