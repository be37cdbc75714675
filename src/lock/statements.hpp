// Every SQL statement of the lock protocol, built once per table.  Values are
// always bound parameters; only the validated, quoted table name is spliced in.
#pragma once

#include <string>

#include <pqxx/connection_base>

#include "lock/names.hpp"

namespace pgelect::detail {

struct Statements {
    explicit Statements(const TableName& table);

    // DDL (simple-query, several statements).
    std::string create;         // fails if the table exists
    std::string try_create;     // creates what is missing, adds pgelect's columns to a pglock table
    std::string drop;

    // $1 name, $2 data (bytea or NULL), $3 owner, $4 replace data (bool),
    // $5 the stale record version the caller may replace (or NULL: only a free/missing row),
    // $6 the NOTIFY channel, $7 the lease in ms (the failover quarantine).
    // Returns one row: record_version_number, data, fencing_token (NULL if not
    // taken), the quarantine (0: none; > 0: ms until the server's new timeline
    // may be taken on; -1: the timeline is below the table's highest), the
    // timeline, pg_notify's void.
    std::string acquire;
    // $1 a token the next ones must exceed.  Returns the sequence's new value,
    // the timeline, the token the next ones exceed.
    std::string bump_epoch;
    // $1 the quoted table name.  Returns the schema and name the server
    // resolves it to (search_path applied), or no row if there is no such table.
    std::string resolve_table;
    // $1 names (text[]).  Returns name, record_version_number, owner,
    // fencing_token of each that has a row.  Read-only.
    std::string poll;
    // $1 name, $2 fencing token, $3 owner, $4 channel.  One row if released.
    std::string release_delete;
    std::string release_keep;
    // $1 names (text[]), $2 fencing tokens (bigint[]), $3 owners (text[]).
    // Returns name, fencing_token, record_version_number: once with the new
    // version for every lock renewed, and once with NULL for every lock still
    // held by that acquisition (renewed or not).  A lock that appears only
    // with NULL was locked by another transaction and skipped (outcome
    // unknown); one that does not appear is no longer held.  A last row with
    // NULL name and token carries the server's timeline.
    std::string renew;
    // $1 name, $2 fencing token, $3 owner, $4 data.  One row if still held.
    std::string set_data;
    // Full rows: name, owner, data, record_version_number, fencing_token,
    // acquired_at and renewed_at as epoch seconds.
    std::string get_one;  // $1 name
    std::string get_all;
    // $1 name, $2 fencing token, $3 owner: locks the row FOR SHARE if that
    // acquisition still holds it (fenced writes).  One row if so.
    std::string fence_check;
    // The server's replication: in recovery, its timeline (NULL on a standby),
    // synchronous_commit, synchronous_standby_names, then per standby
    // streaming from it: true, application_name, state, sync_state (one row
    // with false and NULLs if none).  Read-only.
    std::string replication;

    // Names under which the DML statements above are prepared on every
    // connection of a client (parsed and planned once per connection).
    static constexpr const char* kAcquire = "pgelect_acquire";
    static constexpr const char* kPoll = "pgelect_poll";
    static constexpr const char* kReleaseDelete = "pgelect_release_delete";
    static constexpr const char* kReleaseKeep = "pgelect_release_keep";
    static constexpr const char* kRenew = "pgelect_renew";
    static constexpr const char* kSetData = "pgelect_set_data";
    static constexpr const char* kGetOne = "pgelect_get_one";
    static constexpr const char* kGetAll = "pgelect_get_all";
    // Registers the statements on `conn` (libpqxx prepares each on first use).
    void prepare_on(pqxx::connection_base& conn) const;
};

}  // namespace pgelect::detail
