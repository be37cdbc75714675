// Phase 1: uncontended acquire + release cycles per second, 1 and 4 threads.
//
// pgelect (LockClient::acquire + Lock::release, default timing) against the pglock
// replay (baseline.hpp), measured in alternating slices.  The full run adds two
// diagnostics: pgelect's own SQL issued from a bare connection exactly as the library
// issues it (prepared under the library's names), which isolates what the library adds
// around its SQL; and pglock's real transactional sequence (9 round trips).
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "baseline.hpp"
#include "library_sql.hpp"
#include "phases.hpp"
#include "rate_runner.hpp"
#include "stats.hpp"

namespace bench {
namespace {

struct Impl {
    std::string key;  // JSON key prefix of cycles/s; the suffix is _1t or _4t
    std::unique_ptr<RateRunner> runner;
    // JSON key prefix of the client's context switches per cycle.
    std::string switches_key() const {
        const std::string rate = "cycles_per_s";
        return key.substr(0, key.size() - rate.size()) + "client_switches_per_cycle";
    }
};

// One connection replaying the library's acquire + release of `name`.
std::function<void()> pgelect_sql_worker(const Config& cfg, const std::string& table, const std::string& name) {
    std::shared_ptr<pqxx::connection> conn = connect_prepared(cfg, table);
    const std::string channel = library_channel(table);
    const std::string owner = "bench-sql-" + name;
    return [conn, channel, owner, name] {
        pqxx::nontransaction tx(*conn);
        // $1 name, $2 data, $3 owner, $4 replace data, $5 stale version, $6 channel,
        // $7 lease in ms (the failover quarantine).
        auto r = tx.exec_prepared(Statements::kAcquire, name, nullptr, owner, false, nullptr, channel,
                                  static_cast<long long>(15000));
        if (!r.empty() && r[0][0].is_null()) r = pqxx::result();  // nothing taken
        if (r.empty()) throw std::runtime_error("pgelect SQL replay: uncontended acquire failed");
        // $1 name, $2 fencing token, $3 owner, $4 channel.
        auto d = tx.exec_prepared(Statements::kReleaseDelete, name, r[0][2].as<std::int64_t>(), owner, channel);
        if (d.empty()) throw std::runtime_error("pgelect SQL replay: release failed");
    };
}

std::vector<Impl> make_impls(const Config& cfg, int threads, pgelect::LockClient& client, const PglockSql& psql,
                             const std::string& sql_table) {
    const std::string tag = std::to_string(threads) + "-";
    std::vector<Impl> impls;
    impls.push_back({"cycles_per_s", std::make_unique<RateRunner>(threads, [&](int i) -> std::function<void()> {
                         std::string name = "cycle-" + tag + std::to_string(i);
                         return [&client, name] {
                             pgelect::Lock lock = client.acquire(name);
                             lock.release();
                         };
                     })});
    impls.push_back({"baseline_cycles_per_s", std::make_unique<RateRunner>(threads, [&](int i) -> std::function<void()> {
                         auto r = std::make_shared<PglockReplay>(cfg, psql, "pglock-bench-" + std::to_string(i));
                         std::string name = "cycle-" + tag + std::to_string(i);
                         return [r, name] {
                             auto rvn = r->try_acquire(name);
                             if (!rvn) throw std::runtime_error("pglock replay: uncontended acquire failed");
                             if (!r->release(name, *rvn)) throw std::runtime_error("pglock replay: release failed");
                         };
                     })});
    if (!cfg.cycle_diagnostics) return impls;
    impls.push_back({"diag_pgelect_sql_cycles_per_s", std::make_unique<RateRunner>(threads, [&](int i) {
                         return pgelect_sql_worker(cfg, sql_table, "sql-" + tag + std::to_string(i));
                     })});
    if (threads == 1) {
        impls.push_back({"diag_pglock_tx_cycles_per_s", std::make_unique<RateRunner>(1, [&](int) -> std::function<void()> {
                             auto r = std::make_shared<PglockReplay>(cfg, psql, "pglock-tx");
                             return [r] {
                                 auto rvn = r->try_acquire_tx("cycle-tx");
                                 if (!rvn) throw std::runtime_error("pglock tx replay: acquire failed");
                                 if (!r->release_tx("cycle-tx", *rvn)) {
                                     throw std::runtime_error("pglock tx replay: release failed");
                                 }
                             };
                         })});
    }
    return impls;
}

void measure(const Config& cfg, Admin& admin, bool pss, int threads, std::vector<Impl>& impls,
             const std::string& table) {
    const std::string sfx = "_" + std::to_string(threads) + "t";
    for (auto& impl : impls) {
        if (auto e = impl.runner->error(); !e.empty()) throw std::runtime_error(impl.key + sfx + " warm-up: " + e);
    }
    if (pss) admin.pss_reset();
    const std::int64_t pgelect_before = impls[0].runner->executed();
    // Alternating order, reversed every round; a failed runner reports its error below.
    for (int round = 0; round < cfg.cycle_rounds; ++round) {
        for (std::size_t k = 0; k < impls.size(); ++k) {
            impls[round % 2 == 0 ? k : impls.size() - 1 - k].runner->slice(cfg.cycle_slice_s);
        }
    }
    for (auto& impl : impls) {
        if (auto e = impl.runner->error(); !e.empty()) {
            g_results.error("phase 1 " + impl.key + sfx + ": " + e);
            g_results.num(impl.key + sfx, kNaN);
        } else {
            g_results.num(impl.key + sfx, impl.runner->rate());
            g_results.num(impl.switches_key() + sfx, impl.runner->switches_per_cycle());
        }
    }
    if (pss) {
        const double all = static_cast<double>(impls[0].runner->executed() - pgelect_before);
        const auto st = admin.pss("%" + qid(table) + "%");
        g_results.num("pgelect_statements_per_cycle" + sfx, all > 0 ? static_cast<double>(st.calls) / all : kNaN);
    }
    const auto g = [&](const std::string& key) { return g_results.get(key + sfx); };
    g_results.num("cycle_ratio" + sfx, g("cycles_per_s") / g("baseline_cycles_per_s"));
    if (cfg.cycle_diagnostics) {
        g_results.num("diag_pgelect_sql_over_baseline" + sfx,
                      g("diag_pgelect_sql_cycles_per_s") / g("baseline_cycles_per_s"));
        g_results.num("diag_library_over_sql" + sfx, g("cycles_per_s") / g("diag_pgelect_sql_cycles_per_s"));
    }
    std::string line = "  " + std::to_string(threads) + " thread(s):";
    for (auto& impl : impls) line += " " + impl.key + "=" + fmt(g(impl.key), 0);
    progress(line + " ratio=" + fmt(g("cycle_ratio")));
}

}  // namespace

void phase_cycles(const Config& cfg, Admin& admin, bool pss) {
    progress("phase 1: uncontended acquire+release cycles");
    const std::string table = "bench_cycles";
    pgelect::LockClientOptions o;  // default timing: lease 15 s, heartbeat 2 s, retry 500 ms
    o.table = table;
    o.pool_size = 4;
    pgelect::LockClient client(cfg.dsn, o);
    client.create_table();
    PglockTable pglock(admin, "bench_cycles_pglock");
    const std::string sql_table = "bench_cycles_sql";
    if (cfg.cycle_diagnostics) admin.q(pgelect::schema_sql(sql_table));

    for (int threads : {1, 4}) {
        std::vector<Impl> impls = make_impls(cfg, threads, client, pglock.sql(), sql_table);
        measure(cfg, admin, pss, threads, impls, table);
    }
    if (cfg.cycle_diagnostics) {
        g_results.num("diag_cycle_ratio_1t_vs_pglock_tx",
                      g_results.get("cycles_per_s_1t") / g_results.get("diag_pglock_tx_cycles_per_s_1t"));
        admin.q("DROP TABLE IF EXISTS " + qid(sql_table));
    }
    client.drop_table();
}

}  // namespace bench
