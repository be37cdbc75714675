// Phase 5: 100 contenders (10 clients x 10 threads) wait for one held lock.  Measured:
// the statements/s they issue, how many are write attempts, and the WAL bytes/s they
// add to the holder's own renewal WAL.
//
// Holder heartbeat 100 ms, lease 2 s, retry 500 ms.  The holder's renewals draw from
// <table>_rvn, whose WAL record comes once per 33 nextval() calls; every window runs
// from just after one renewal to just after the waiter_window_ticks-th next one (a
// multiple of 33), so each window holds the holder's WAL exactly and the difference
// between windows is what the waiters add.  Window A: holder only; B: with the
// waiters; A2 (full run): holder only again, averaged with A against drift.
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "library_sql.hpp"
#include "phases.hpp"
#include "stats.hpp"

namespace bench {
namespace {

struct Window {
    std::int64_t from = 0, to = 0;
    double secs = 0;
    double rate() const { return secs > 0 ? static_cast<double>(to - from) / secs : kNaN; }
};
using Hook = std::function<void()>;

// Quiet server for the WAL windows: no tables of earlier phases left for autovacuum,
// catalogs vacuumed, a checkpoint now (the next timed one is minutes away).
void quiet_server(Admin& admin) {
    for (const auto& row : admin.q("SELECT quote_ident(tablename) FROM pg_tables WHERE tablename LIKE 'bench\\_%'")) {
        admin.q("DROP TABLE IF EXISTS " + row[0].as<std::string>());
    }
    // Dead-row counts of the drops reach the shared statistics only when a session flushes
    // them (up to 10 s later); flush now, so that the VACUUM below leaves autovacuum nothing.
    try {
        admin.q("SELECT pg_stat_force_next_flush()");
        admin.q("SELECT 1");
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(200ms);
    admin.q("VACUUM");
    admin.q("CHECKPOINT");
}

// WAL windows bounded by the holder's renewals.
class WindowMeter {
public:
    WindowMeter(const Config& cfg, Admin& admin, const std::string& table, const pgelect::Lock& held)
        : cfg_(cfg), admin_(admin), table_(table), held_(held) {}

    // A window in which autovacuum of some other relation (say pg_statistic) wrote WAL is
    // measured again (at most twice): such records are not the waiters' doing.  on_start
    // runs right after the window's first LSN is read, on_end right after its last.
    Window measure(const Hook& on_start = nullptr, const Hook& on_end = nullptr) {
        Window w = measure_once(on_start, on_end);
        for (int retry = 0; retry < 2; ++retry) {
            std::this_thread::sleep_for(300ms);  // let the window's end reach the flushed WAL
            if (admin_.wal_foreign_records(w.from, w.to, table_) <= 0) break;
            ++discarded_;
            w = measure_once(on_start, on_end);
        }
        return w;
    }
    int discarded() const { return discarded_; }

private:
    // Waits for the holder's next renewal to complete (its record version changes).
    void wait_tick(std::int64_t& rvn) {
        const auto deadline = Clock::now() + 3s;
        while (held_.record_version_number() == rvn) {
            if (held_.is_released() || Clock::now() > deadline) throw std::runtime_error("the holder's renewals stopped");
            std::this_thread::sleep_for(300us);
        }
        rvn = held_.record_version_number();
    }
    // Each window starts from the same page state: VACUUM removes the dead row versions
    // (otherwise whether a page-pruning record falls into a short window is luck).
    Window measure_once(const Hook& on_start, const Hook& on_end) {
        Window w;
        admin_.q("VACUUM " + qid(table_));
        std::int64_t rvn = held_.record_version_number();
        wait_tick(rvn);
        w.from = admin_.wal_insert_lsn();
        const auto t0 = Clock::now();
        if (on_start) on_start();
        for (int i = 0; i < cfg_.waiter_window_ticks; ++i) wait_tick(rvn);
        w.to = admin_.wal_insert_lsn();
        w.secs = s_between(t0, Clock::now());
        if (on_end) on_end();
        return w;
    }

    const Config& cfg_;
    Admin& admin_;
    const std::string table_;
    const pgelect::Lock& held_;
    int discarded_ = 0;
};

// cfg.waiters threads over cfg.waiter_clients clients, each in acquire() of `name`
// until stop() (their cancellation is expected; acquiring or failing is recorded).
class Waiters {
public:
    Waiters(const Config& cfg, const std::string& table, pgelect::LeaseTiming t, const std::string& name) {
        const auto pool = static_cast<std::size_t>(cfg.waiters / cfg.waiter_clients + 1);
        for (int c = 0; c < cfg.waiter_clients; ++c) {
            clients_.push_back(std::make_unique<pgelect::LockClient>(cfg.dsn, client_options(table, t, pool)));
        }
        for (int w = 0; w < cfg.waiters; ++w) {
            threads_.emplace_back([this, w, name] {
                started_.fetch_add(1);
                try {
                    pgelect::Lock l = clients_[w % clients_.size()]->acquire(name, {}, stop_.get_token());
                    acquired_.fetch_add(1);
                    l.release();
                } catch (const pgelect::NotAcquiredError&) {
                    // cancelled at the end: expected
                } catch (const std::exception& e) {
                    std::lock_guard lk(mu_);
                    if (error_.empty()) error_ = e.what();
                }
            });
        }
    }
    ~Waiters() { stop(); }
    void stop() {
        stop_.request_stop();
        for (auto& th : threads_) {
            if (th.joinable()) th.join();
        }
    }
    int started() const { return started_.load(); }
    int acquired() const { return acquired_.load(); }
    std::string error() const {
        std::lock_guard lk(mu_);
        return error_;
    }

private:
    std::vector<std::unique_ptr<pgelect::LockClient>> clients_;
    std::stop_source stop_;
    std::atomic<int> started_{0}, acquired_{0};
    mutable std::mutex mu_;
    std::string error_;
    std::vector<std::thread> threads_;
};

void record_windows(Admin& admin, const std::vector<Window>& as, const Window& b, int discarded) {
    double holder_rate = 0;
    for (std::size_t i = 0; i < as.size(); ++i) {
        holder_rate += as[i].rate() / static_cast<double>(as.size());
        g_results.num("holder_wal_bytes_per_s_window" + std::to_string(i + 1), as[i].rate());
        g_results.str("wal_records_holder_only_window" + std::to_string(i + 1), admin.wal_stats(as[i].from, as[i].to).text);
    }
    g_results.str("wal_records_with_waiters", admin.wal_stats(b.from, b.to).text);
    g_results.num("waiter_windows_discarded", discarded);
    g_results.num("holder_wal_bytes_per_s", holder_rate);
    g_results.num("with_waiters_wal_bytes_per_s", b.rate());
    g_results.num("waiter_extra_wal_bytes_per_s", std::max(0.0, b.rate() - holder_rate));
    g_results.num("waiter_extra_wal_bytes_per_s_signed", b.rate() - holder_rate);
    const auto [other_records, other_bytes] = admin.wal_other_tx(b.from, b.to);
    if (other_records >= 0) {
        g_results.num("waiter_tx_wal_records", static_cast<double>(other_records));
        g_results.num("waiter_tx_wal_bytes_per_s", static_cast<double>(other_bytes) / b.secs);
    }
}

}  // namespace

void phase_waiters(const Config& cfg, Admin& admin, bool pss) {
    progress("phase 5: " + std::to_string(cfg.waiters) + " waiting contenders");
    const std::string table = "bench_waiters";
    const auto t = timing(2s, 1500ms, 100ms, 500ms);
    g_results.num("waiters", cfg.waiters);
    g_results.num("waiter_retry_ms", static_cast<double>(t.retry_interval.count()));
    g_results.num("waiter_holder_heartbeat_ms", static_cast<double>(t.heartbeat_interval.count()));
    g_results.num("waiter_window_renewals", cfg.waiter_window_ticks);
    quiet_server(admin);
    pgelect::LockClient holder(cfg.dsn, client_options(table, t));
    holder.create_table();
    // The waiters create no dead rows; an autovacuum of the holder's row versions landing
    // in one window only would skew the difference.
    admin.q("ALTER TABLE " + qid(table) + " SET (autovacuum_enabled = false)");
    pgelect::Lock held = holder.acquire("contended");
    std::this_thread::sleep_for(500ms);
    const std::string renew_like = pgelect_renew_like(table);
    // The conditional upsert (inside the acquire's CTE): one per acquisition attempt.
    const std::string acquire_like = "%INSERT INTO " + qid(table) + "%";
    WindowMeter meter(cfg, admin, table, held);

    const Window a = meter.measure();
    progress("  holder only: " + fmt(a.rate(), 1) + " WAL bytes/s");
    if (pss) admin.pss_reset();
    Waiters waiters(cfg, table, t, "contended");
    const auto start_deadline = Clock::now() + 20s;
    while (waiters.started() < cfg.waiters && Clock::now() < start_deadline) std::this_thread::sleep_for(5ms);
    // Each waiter's first attempt is a write (the conditional upsert): measure only once
    // every waiter has made it, and then waits.
    while (pss && admin.pss(acquire_like).calls < cfg.waiters && Clock::now() < start_deadline) {
        std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(cfg.waiter_settle_s));

    PssStat waiter_st, writes, renew_st;
    const Window b = meter.measure([&] { if (pss) admin.pss_reset(); },
                                   [&] {
                                       if (!pss) return;
                                       waiter_st = admin.pss("%" + qid(table) + "%", renew_like);
                                       writes = admin.pss(acquire_like);
                                       renew_st = admin.pss(renew_like);
                                   });
    if (pss) {
        g_results.num("waiter_statements_per_s", static_cast<double>(waiter_st.calls) / b.secs);
        g_results.num("waiter_write_attempts_per_s", static_cast<double>(writes.calls) / b.secs);
        g_results.num("holder_statements_per_s", static_cast<double>(renew_st.calls) / b.secs);
    }
    waiters.stop();
    std::vector<Window> as{a};
    if (!cfg.quick) {
        std::this_thread::sleep_for(300ms);
        as.push_back(meter.measure());
    }
    record_windows(admin, as, b, meter.discarded());
    progress("  with waiters: " + fmt(b.rate(), 1) + " WAL bytes/s; waiters issue " +
             fmt(g_results.get("waiter_statements_per_s"), 1) + " statements/s");
    if (waiters.acquired() > 0) {
        g_results.error("phase 5: " + std::to_string(waiters.acquired()) + " waiter(s) acquired the held lock");
    }
    if (const auto e = waiters.error(); !e.empty()) g_results.error("phase 5 waiter: " + e);
    if (held.is_released()) g_results.error("phase 5: the holder lost its lock during the run");
    try {
        held.release();
    } catch (const std::exception&) {
    }
}

}  // namespace bench
