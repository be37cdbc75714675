// Phase 2: the cost of one renewal tick with N = 1, 100, 1000, 10000 held locks.
//
// pgelect: one client holds N locks; pg_stat_statements counts the library's renewal
// statements over a window, then the bench times the library's renewal statement
// itself (prepared under the library's name, same arrays) right after a library tick.
// Baseline: pglock's heartbeat replayed for N locks on one connection (nextval + UPDATE
// per lock).
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "baseline.hpp"
#include "library_sql.hpp"
#include "phases.hpp"
#include "stats.hpp"

namespace bench {
namespace {

// The rvn of `name`, read with the library's prepared poll (-1 if free or missing).
std::int64_t read_rvn(pqxx::connection& conn, const std::string& name) {
    pqxx::nontransaction tx(conn);
    auto r = tx.exec_prepared(Statements::kPoll, name);
    return r.empty() || r[0][0].is_null() ? -1 : r[0][0].as<std::int64_t>();
}

// Polls the rvn of `name` until it differs from `seen`: a library tick has completed.
bool wait_rvn_change(pqxx::connection& conn, const std::string& name, std::int64_t seen, Clock::time_point deadline) {
    while (Clock::now() < deadline) {
        const std::int64_t rvn = read_rvn(conn, name);
        if (rvn != -1 && rvn != seen) return true;
        std::this_thread::sleep_for(2ms);
    }
    return false;
}

// The library's renewals as the server saw them over a window of renew_window_s.
void count_library_renewals(const Config& cfg, Admin& admin, const std::string& table, int n) {
    const std::string sfx = "_" + std::to_string(n);
    admin.pss_reset();
    const auto lsn0 = admin.wal_insert_lsn();
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(cfg.renew_window_s));
    const auto st = admin.pss(pgelect_renew_like(table));
    const auto lsn1 = admin.wal_insert_lsn();
    const double secs = s_between(t0, Clock::now());
    // The statement returns two rows per renewed lock and one with the
    // timeline (see Statements::renew).
    const double locks_renewed = static_cast<double>(st.rows - st.calls) / 2;
    // WAL written per renewed lock (nothing else runs meanwhile).
    if (locks_renewed > 0) {
        g_results.num("diag_renew_wal_bytes_per_lock" + sfx, static_cast<double>(lsn1 - lsn0) / locks_renewed);
    }
    // Each tick renews all n locks: ticks = locks renewed / n, statements per tick = calls / ticks.
    const double ticks = locks_renewed / n;
    g_results.num("renew_statements_per_tick" + sfx, ticks > 0 ? static_cast<double>(st.calls) / ticks : kNaN);
    g_results.num("renew_statements_per_s_x_heartbeat" + sfx,
                  static_cast<double>(st.calls) / secs * (static_cast<double>(cfg.renew_heartbeat.count()) / 1000.0));
    g_results.num("renew_server_ms" + sfx, st.mean_ms());
}

// Client-observed wall time of the library's renewal statement with the same arrays,
// issued right after a library tick so that it does not queue behind the library's own.
void time_renew_statement(const Config& cfg, const std::string& table, const std::vector<pgelect::Lock>& locks) {
    const int n = static_cast<int>(locks.size());
    const auto hb = cfg.renew_heartbeat;
    std::vector<std::string> names, owners;
    std::vector<std::int64_t> tokens;
    for (const auto& l : locks) {
        names.push_back(l.name());
        owners.push_back(l.owner());
        tokens.push_back(l.fencing_token());
    }
    const std::string names_arr = text_array(names), tokens_arr = bigint_array(tokens), owners_arr = text_array(owners);
    auto conn = connect_prepared(cfg, table);
    std::int64_t seen = read_rvn(*conn, names[0]);
    std::vector<double> samples;
    int partial = 0;
    const auto deadline = Clock::now() + hb * (cfg.renew_client_runs + 4) + 10s;
    while (static_cast<int>(samples.size()) < cfg.renew_client_runs && Clock::now() < deadline) {
        if (!wait_rvn_change(*conn, names[0], seen, Clock::now() + hb * 3)) break;
        const auto tick_seen = Clock::now();
        // Runs while well inside the gap before the next library tick.
        while (static_cast<int>(samples.size()) < cfg.renew_client_runs && Clock::now() - tick_seen < hb / 2) {
            pqxx::nontransaction tx(*conn);
            const auto s = Clock::now();
            // $1 names, $2 fencing tokens, $3 owners.
            auto r = tx.exec_prepared(Statements::kRenew, names_arr, tokens_arr, owners_arr);
            const auto e = Clock::now();
            // Rows with a name and a new version: the locks renewed (the others
            // list every held lock, and the one without a name the timeline).
            int renewed = 0;
            for (const auto& row : r) renewed += row[0].is_null() || row[2].is_null() ? 0 : 1;
            // Rows the library's own tick had locked are skipped, not waited
            // for: such a sample did less work and is not counted.
            if (renewed != n) {
                ++partial;
                continue;
            }
            samples.push_back(ms_between(s, e));
            for (const auto& row : r) {
                // name, fencing token, new version (NULL if skipped).
                if (!row[0].is_null() && row[0].as<std::string>() == names[0] && !row[2].is_null()) {
                    seen = row[2].as<std::int64_t>();
                }
            }
        }
    }
    if (samples.empty() && partial > 0) {
        throw std::runtime_error("bench renewal of " + std::to_string(n) +
                                 " locks: every run overlapped a library tick and skipped rows");
    }
    g_results.num("renew_tick_ms_" + std::to_string(n), median(samples));
}

void measure_renew_pgelect(const Config& cfg, Admin& admin, bool pss, const std::string& table,
                           const std::vector<pgelect::Lock>& locks) {
    const int n = static_cast<int>(locks.size());
    const std::string sfx = "_" + std::to_string(n);
    // One full tick after the last acquisition puts every lock on the same schedule.
    std::this_thread::sleep_for(cfg.renew_heartbeat + 300ms);
    if (pss) count_library_renewals(cfg, admin, table, n);
    std::size_t held = 0;
    for (const auto& l : locks) held += l.is_released() ? 0 : 1;
    g_results.num("renew_locks_still_held" + sfx, static_cast<double>(held));
    if (held != locks.size()) {
        g_results.error("phase 2 n=" + std::to_string(n) + ": only " + std::to_string(held) +
                        " locks still held during the renewal window");
    }
    time_renew_statement(cfg, table, locks);
    try {
        // Share of the table's updates that were HOT (since creation; stats lag up to 1 s).
        auto r = admin.q("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = '" + table + "'");
        if (!r.empty() && r[0][0].as<double>() > 0) {
            g_results.num("diag_renew_hot_update_share" + sfx, r[0][1].as<double>() / r[0][0].as<double>());
        }
    } catch (const std::exception&) {
    }
    if (pss) {
        // The bench's statement is the library's: one pg_stat_statements entry.
        const auto st = admin.pss(pgelect_renew_like(table));
        if (st.entries != 1) {
            g_results.error("phase 2: the bench's renew statement differs from the library's (" +
                            std::to_string(st.entries) + " pg_stat_statements entries)");
        }
    }
}

// n locks acquired from up to 4 threads of one client.
std::vector<pgelect::Lock> acquire_all(pgelect::LockClient& client, int n) {
    const int threads = n >= 4 ? 4 : 1;
    std::vector<std::vector<pgelect::Lock>> parts(threads);
    std::vector<std::string> errs(threads);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            try {
                for (int i = t; i < n; i += threads) parts[t].push_back(client.acquire("renew-" + std::to_string(i)));
            } catch (const std::exception& e) {
                errs[t] = e.what();
            }
        });
    }
    for (auto& t : ts) t.join();
    std::vector<pgelect::Lock> locks;
    locks.reserve(n);
    for (auto& p : parts) {
        for (auto& l : p) locks.push_back(std::move(l));
    }
    for (auto& e : errs) {
        if (!e.empty()) throw std::runtime_error("acquiring " + std::to_string(n) + " locks: " + e);
    }
    return locks;
}

void renewal_pgelect(const Config& cfg, Admin& admin, bool pss, int n) {
    const std::string table = "bench_renew_" + std::to_string(n);
    pgelect::LockClient client(cfg.dsn, client_options(table, timing(15s, 10s, cfg.renew_heartbeat, 500ms), 4));
    client.create_table();
    std::vector<pgelect::Lock> locks;
    // The table is dropped right after: abandoning the handles (no statement) saves n releases.
    auto finish = [&] {
        for (auto& l : locks) {
            try {
                l.abandon();
            } catch (const std::exception&) {
            }
        }
        client.drop_table();
    };
    try {
        locks = acquire_all(client, n);
        measure_renew_pgelect(cfg, admin, pss, table, locks);
    } catch (...) {
        finish();
        throw;
    }
    finish();
}

void renewal_baseline(const Config& cfg, Admin& admin, int n) {
    const std::string sfx = "_" + std::to_string(n);
    PglockTable table(admin, "bench_renew_pglock_" + std::to_string(n));
    const PglockSql& psql = table.sql();
    PglockReplay r(cfg, psql, "pglock-bench");
    std::vector<std::pair<std::string, std::int64_t>> held;
    {
        // Setup in bulk (not measured): n held rows.
        pqxx::nontransaction tx(r.conn());
        auto res = tx.exec_params("INSERT INTO " + qid(psql.table) +
                                      " (name, record_version_number, data, owner) SELECT 'renew-' || g, "
                                      "nextval('" + qid(psql.table + "_rvn") + "'), NULL, $1 "
                                      "FROM generate_series(1, $2) g RETURNING name, record_version_number",
                                  "pglock-bench", n);
        for (const auto& row : res) held.emplace_back(row[0].as<std::string>(), row[1].as<std::int64_t>());
    }
    // One tick: every held lock through `beat` (the plain or the transactional heartbeat).
    auto tick = [&](auto beat) {
        const auto s = Clock::now();
        for (auto& [name, rvn] : held) {
            auto next = (r.*beat)(name, rvn);
            if (!next) throw std::runtime_error("pglock replay heartbeat lost lock " + name);
            rvn = *next;
        }
        return ms_between(s, Clock::now());
    };
    const int reps = n >= 10000 ? cfg.baseline_tick_reps_10k : 3;
    std::vector<double> samples;
    for (int k = 0; k < reps; ++k) samples.push_back(tick(&PglockReplay::heartbeat));
    g_results.num("baseline_renew_statements_per_tick" + sfx, 2.0 * n);  // nextval + UPDATE per lock
    g_results.num("baseline_renew_tick_ms" + sfx, median(samples));
    std::string all;
    for (double v : samples) all += (all.empty() ? "" : " ") + fmt(v, 1);
    g_results.str("baseline_renew_tick_ms_samples" + sfx, all);
    // pglock's real heartbeat (in a SERIALIZABLE transaction), one tick.
    if (cfg.cycle_diagnostics) g_results.num("diag_pglock_tx_renew_tick_ms" + sfx, tick(&PglockReplay::heartbeat_tx));
}

}  // namespace

void phase_renewal(const Config& cfg, Admin& admin, bool pss) {
    progress("phase 2: renewal cost with N held locks");
    for (int n : {1, 100, 1000, 10000}) {
        const std::string sfx = "_" + std::to_string(n);
        try {
            renewal_pgelect(cfg, admin, pss, n);
        } catch (const std::exception& e) {
            g_results.error("phase 2 pgelect n=" + std::to_string(n) + ": " + e.what());
        }
        try {
            renewal_baseline(cfg, admin, n);
        } catch (const std::exception& e) {
            g_results.error("phase 2 baseline n=" + std::to_string(n) + ": " + e.what());
        }
        progress("  N=" + std::to_string(n) + ": pgelect " + fmt(g_results.get("renew_statements_per_tick" + sfx)) +
                 " stmt/tick, " + fmt(g_results.get("renew_tick_ms" + sfx), 3) + " ms/tick (server " +
                 fmt(g_results.get("renew_server_ms" + sfx), 3) + " ms); pglock replay " +
                 fmt(g_results.get("baseline_renew_statements_per_tick" + sfx), 0) + " stmt/tick, " +
                 fmt(g_results.get("baseline_renew_tick_ms" + sfx), 3) + " ms/tick");
    }
    g_results.num("renew_speedup_10000",
                  g_results.get("baseline_renew_tick_ms_10000") / g_results.get("renew_tick_ms_10000"));
}

}  // namespace bench
