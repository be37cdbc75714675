#include "baseline.hpp"

#include "admin.hpp"

namespace bench {
namespace {

// Runs fn(tx) between BEGIN ISOLATION LEVEL SERIALIZABLE and COMMIT, or ROLLBACK if fn
// returns nullopt or throws.
template <class Fn>
auto serializable(pqxx::connection& conn, Fn fn) -> decltype(fn(std::declval<pqxx::nontransaction&>())) {
    pqxx::nontransaction tx(conn);
    try {
        tx.exec("BEGIN ISOLATION LEVEL SERIALIZABLE");
        auto out = fn(tx);
        tx.exec(out ? "COMMIT" : "ROLLBACK");
        return out;
    } catch (...) {
        try {
            tx.exec("ROLLBACK");
        } catch (...) {
        }
        throw;
    }
}

}  // namespace

PglockSql::PglockSql(const std::string& table) : table(table) {
    const std::string t = qid(table);
    const std::string seq = qid(table + "_rvn");
    create = "CREATE TABLE " + t +
             " (name varchar(255) PRIMARY KEY, record_version_number bigint, data bytea, "
             "owner varchar(255)); CREATE SEQUENCE " + seq + " CYCLE OWNED BY " + t +
             ".record_version_number";
    nextval = "SELECT nextval('" + seq + "')";
    upsert = "INSERT INTO " + t +
             " (name, record_version_number, data, owner) VALUES ($1, $2, $3, $4) "
             "ON CONFLICT (name) DO UPDATE SET record_version_number = $2, owner = $4, "
             "data = CASE WHEN $5 THEN $3 ELSE " + t + ".data END "
             "WHERE " + t + ".record_version_number IS NULL OR " + t + ".record_version_number = $6";
    lock_row = "SELECT record_version_number, data, owner FROM " + t + " WHERE name = $1 FOR UPDATE";
    release_delete = "DELETE FROM " + t + " WHERE name = $1 AND record_version_number = $2";
    release_null = "UPDATE " + t +
                   " SET record_version_number = NULL WHERE name = $1 AND record_version_number = $2";
    delete_null = "DELETE FROM " + t + " WHERE name = $1 AND record_version_number IS NULL";
    heartbeat = "UPDATE " + t + " SET record_version_number = $3 WHERE name = $1 AND record_version_number = $2";
}

PglockReplay::PglockReplay(const Config& cfg, const PglockSql& sql, std::string owner)
    : conn_(connect(cfg)), sql_(sql), owner_(std::move(owner)) {}

std::int64_t PglockReplay::nextval() {
    pqxx::nontransaction tx(*conn_);
    return tx.exec(sql_.nextval)[0][0].as<std::int64_t>();
}

std::optional<std::int64_t> PglockReplay::try_acquire(const std::string& name) {
    const std::int64_t rvn = nextval();
    pqxx::nontransaction tx(*conn_);
    auto r = tx.exec_params(sql_.upsert, name, rvn, nullptr, owner_, false, nullptr);
    if (r.affected_rows() != 1) return std::nullopt;
    return rvn;
}

bool PglockReplay::release(const std::string& name, std::int64_t rvn) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec_params(sql_.release_delete, name, rvn).affected_rows() == 1;
}

std::optional<std::int64_t> PglockReplay::heartbeat(const std::string& name, std::int64_t rvn) {
    const std::int64_t next = nextval();
    pqxx::nontransaction tx(*conn_);
    if (tx.exec_params(sql_.heartbeat, name, rvn, next).affected_rows() != 1) return std::nullopt;
    return next;
}

std::optional<std::int64_t> PglockReplay::try_acquire_tx(const std::string& name) {
    const std::int64_t rvn = nextval();
    return serializable(*conn_, [&](pqxx::nontransaction& tx) -> std::optional<std::int64_t> {
        tx.exec_params(sql_.upsert, name, rvn, nullptr, owner_, false, nullptr);
        auto r = tx.exec_params(sql_.lock_row, name);
        if (r.empty() || r[0][0].is_null() || r[0][0].as<std::int64_t>() != rvn) return std::nullopt;
        return rvn;
    });
}

bool PglockReplay::release_tx(const std::string& name, std::int64_t rvn) {
    return serializable(*conn_, [&](pqxx::nontransaction& tx) -> std::optional<bool> {
               if (tx.exec_params(sql_.release_null, name, rvn).affected_rows() != 1) return std::nullopt;
               tx.exec_params(sql_.delete_null, name);
               return true;
           }).has_value();
}

std::optional<std::int64_t> PglockReplay::heartbeat_tx(const std::string& name, std::int64_t rvn) {
    const std::int64_t next = nextval();
    return serializable(*conn_, [&](pqxx::nontransaction& tx) -> std::optional<std::int64_t> {
        if (tx.exec_params(sql_.heartbeat, name, rvn, next).affected_rows() != 1) return std::nullopt;
        return next;
    });
}

PglockTable::PglockTable(Admin& admin, const std::string& table) : admin_(admin), sql_(table) {
    admin_.q(sql_.create);
}

PglockTable::~PglockTable() {
    try {
        admin_.q("DROP TABLE IF EXISTS " + qid(sql_.table));
    } catch (const std::exception&) {
    }
}

}  // namespace bench
