// The benchmark's own connection: server settings, pg_stat_statements and WAL positions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <pqxx/pqxx>

#include "common.hpp"

namespace bench {

// A sum over pg_stat_statements entries.
struct PssStat {
    std::int64_t entries = 0;
    std::int64_t calls = 0;
    std::int64_t rows = 0;
    double total_ms = 0;
    double mean_ms() const { return calls ? total_ms / static_cast<double>(calls) : kNaN; }
};

class Admin {
public:
    explicit Admin(const Config& cfg);

    pqxx::result q(const std::string& sql);
    std::string show(const std::string& setting);  // "?" if it fails

    bool pss_available();
    void pss_reset();
    // Sum over the entries whose text matches `like` and, if given, not `not_like`.
    PssStat pss(const std::string& like, const std::string& not_like = "");

    // Exact WAL insert position in bytes (pg_current_wal_lsn() lags by unwritten buffers).
    std::int64_t wal_insert_lsn();

    struct WalStats {
        std::string text;           // "type countx/bytesB, ..." ("" if unavailable)
        std::int64_t records = -1;  // -1: pg_walinspect unavailable
    };
    // pg_walinspect breakdown of [from, to) by record type.
    WalStats wal_stats(std::int64_t from, std::int64_t to);
    // WAL records in [from, to) written by transactions other than the lock holder's
    // renewals (an xid that never wrote a Heap UPDATE/HOT_UPDATE there).  Records without
    // an xid (page pruning, bgwriter snapshots) are shared maintenance and not counted.
    // Returns {records, bytes}, or {-1, -1} without pg_walinspect.
    std::pair<std::int64_t, std::int64_t> wal_other_tx(std::int64_t from, std::int64_t to);
    // WAL records in [from, to) that touch a relation other than `table`, its sequences and
    // its primary key index: autovacuum of a catalog and the like, never the waiters (who
    // only read `table`).  -1 without pg_walinspect.
    std::int64_t wal_foreign_records(std::int64_t from, std::int64_t to, const std::string& table);

private:
    // Runs a pg_walinspect query over [from, to) clipped to the flushed WAL: $1 and $2 are
    // the bounds, `extra` binds $3.
    pqxx::result wal_query(const std::string& sql, std::int64_t from, std::int64_t to,
                           const std::string& extra = "");

    std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace bench
