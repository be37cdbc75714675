#include "admin.hpp"

#include <cstdio>

namespace bench {
namespace {

std::string lsn_text(std::int64_t bytes) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(bytes >> 32),
                  static_cast<unsigned>(bytes & 0xffffffff));
    return buf;
}

// The WAL between the bounds $1 and $2, clipped to what is flushed (pg_walinspect reads only that).
constexpr const char* kWalRange = "$1::pg_lsn, least($2::pg_lsn, pg_current_wal_flush_lsn())";

}  // namespace

Admin::Admin(const Config& cfg) : conn_(connect(cfg)) {}

pqxx::result Admin::q(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec(sql);
}

std::string Admin::show(const std::string& setting) {
    try {
        return q("SHOW " + setting)[0][0].as<std::string>();
    } catch (const std::exception&) {
        return "?";
    }
}

bool Admin::pss_available() {
    try {
        q("SELECT count(*) FROM pg_stat_statements");
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

void Admin::pss_reset() { q("SELECT pg_stat_statements_reset()"); }

PssStat Admin::pss(const std::string& like, const std::string& not_like) {
    pqxx::nontransaction tx(*conn_);
    const std::string sql =
        "SELECT count(*), coalesce(sum(calls),0)::bigint, coalesce(sum(rows),0)::bigint, "
        "coalesce(sum(total_exec_time),0)::float8 FROM pg_stat_statements WHERE query LIKE $1";
    pqxx::result r = not_like.empty() ? tx.exec_params(sql, like)
                                      : tx.exec_params(sql + " AND query NOT LIKE $2", like, not_like);
    PssStat s;
    s.entries = r[0][0].as<std::int64_t>();
    s.calls = r[0][1].as<std::int64_t>();
    s.rows = r[0][2].as<std::int64_t>();
    s.total_ms = r[0][3].as<double>();
    return s;
}

std::int64_t Admin::wal_insert_lsn() {
    return q("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")[0][0].as<std::int64_t>();
}

pqxx::result Admin::wal_query(const std::string& sql, std::int64_t from, std::int64_t to,
                              const std::string& extra) {
    pqxx::nontransaction tx(*conn_);
    return extra.empty() ? tx.exec_params(sql, lsn_text(from), lsn_text(to))
                         : tx.exec_params(sql, lsn_text(from), lsn_text(to), extra);
}

Admin::WalStats Admin::wal_stats(std::int64_t from, std::int64_t to) {
    WalStats w;
    try {
        auto r = wal_query(std::string("SELECT \"resource_manager/record_type\", count, combined_size "
                                       "FROM pg_get_wal_stats(") +
                               kWalRange + ", true) WHERE count > 0 ORDER BY combined_size DESC",
                           from, to);
        w.records = 0;
        for (const auto& row : r) {
            const auto count = row[1].as<std::int64_t>();
            if (!w.text.empty()) w.text += ", ";
            w.text += row[0].as<std::string>() + " " + std::to_string(count) + "x/" +
                      std::to_string(row[2].as<std::int64_t>()) + "B";
            w.records += count;
        }
        if (w.text.empty()) w.text = "(none)";
    } catch (const std::exception& e) {
        w.text = std::string("(pg_walinspect: ") + e.what() + ")";
        w.records = -1;
    }
    return w;
}

std::pair<std::int64_t, std::int64_t> Admin::wal_other_tx(std::int64_t from, std::int64_t to) {
    try {
        auto r = wal_query(std::string("WITH r AS (SELECT xid::text AS x, resource_manager AS rm, "
                                       "record_type AS rt, record_length FROM pg_get_wal_records_info(") +
                               kWalRange +
                               ")) SELECT count(*), coalesce(sum(record_length), 0)::bigint FROM r "
                               "WHERE x <> '0' AND x NOT IN "
                               "(SELECT x FROM r WHERE rm = 'Heap' AND rt IN ('UPDATE', 'HOT_UPDATE'))",
                           from, to);
        return {r[0][0].as<std::int64_t>(), r[0][1].as<std::int64_t>()};
    } catch (const std::exception&) {
        return {-1, -1};
    }
}

std::int64_t Admin::wal_foreign_records(std::int64_t from, std::int64_t to, const std::string& table) {
    try {
        auto r = wal_query(std::string("SELECT count(*) FROM (SELECT coalesce(pg_filenode_relation(0, "
                                       "substring(block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)')::oid)::text, "
                                       "'?') AS rel FROM pg_get_wal_records_info(") +
                               kWalRange +
                               ") WHERE block_ref IS NOT NULL AND block_ref <> '') x "
                               "WHERE rel NOT IN ($3, $3 || '_rvn', $3 || '_fence', $3 || '_pkey')",
                           from, to, table);
        return r[0][0].as<std::int64_t>();
    } catch (const std::exception&) {
        return -1;
    }
}

}  // namespace bench
