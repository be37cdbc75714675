// The baseline: pglock's table and statement sequence (cirello.io/pglock client.go),
// replayed through libpqxx.  Like pglock (database/sql + lib/pq), it prepares nothing:
// `SELECT nextval(...)` goes as a simple query, every other statement as an unnamed
// parameterised statement (PQexecParams), parsed and planned on every call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <pqxx/pqxx>

#include "common.hpp"

namespace bench {

class Admin;

struct PglockSql {
    explicit PglockSql(const std::string& table);
    std::string table, create, nextval, upsert, lock_row, release_delete, release_null, delete_null,
        heartbeat;
};

// One pglock "client" on its own connection.  Each method is autocommit, one round
// trip per statement; the *_tx variants replay pglock's SERIALIZABLE transactions.
class PglockReplay {
public:
    PglockReplay(const Config& cfg, const PglockSql& sql, std::string owner);

    std::int64_t nextval();
    // nextval, then the CASE-based upsert (two round trips).  Returns the rvn if taken.
    std::optional<std::int64_t> try_acquire(const std::string& name);
    // DELETE (one round trip).
    bool release(const std::string& name, std::int64_t rvn);
    // nextval + UPDATE.  Returns the new rvn, or nullopt if the lock was lost.
    std::optional<std::int64_t> heartbeat(const std::string& name, std::int64_t rvn);

    // pglock's real sequence: nextval, then BEGIN SERIALIZABLE; upsert; SELECT ... FOR
    // UPDATE; COMMIT (5 round trips); release as BEGIN SERIALIZABLE; UPDATE ... NULL;
    // DELETE; COMMIT (4 round trips); heartbeat as nextval, BEGIN SERIALIZABLE; UPDATE;
    // COMMIT (4 round trips).
    std::optional<std::int64_t> try_acquire_tx(const std::string& name);
    bool release_tx(const std::string& name, std::int64_t rvn);
    std::optional<std::int64_t> heartbeat_tx(const std::string& name, std::int64_t rvn);

    pqxx::connection& conn() { return *conn_; }

private:
    std::unique_ptr<pqxx::connection> conn_;
    const PglockSql& sql_;
    std::string owner_;
};

// A phase's pglock table, created on construction and dropped on destruction (so that
// autovacuum of its dead rows stays out of later phases).
class PglockTable {
public:
    PglockTable(Admin& admin, const std::string& table);
    ~PglockTable();
    PglockTable(const PglockTable&) = delete;
    PglockTable& operator=(const PglockTable&) = delete;
    const PglockSql& sql() const { return sql_; }

private:
    Admin& admin_;
    PglockSql sql_;
};

}  // namespace bench
