#include "lock/statements.hpp"

namespace pgelect::detail {
namespace {

// The column list shared by create and try-create.  The first four columns and
// the _rvn sequence are pglock's, so pglock clients and pgelect clients
// exclude each other on the same table.
std::string create_table_sql(const TableName& t, bool if_not_exists) {
    return std::string("CREATE TABLE ") + (if_not_exists ? "IF NOT EXISTS " : "") + t.quoted() +
           " (\n"
           "    name CHARACTER VARYING(255) PRIMARY KEY,\n"
           "    record_version_number BIGINT,\n"
           "    data BYTEA,\n"
           "    owner CHARACTER VARYING(255),\n"
           "    fencing_token BIGINT,\n"
           "    acquired_at TIMESTAMPTZ,\n"
           "    renewed_at TIMESTAMPTZ\n"
           // Half-empty pages let renewals be HOT updates (no index write, less WAL).
           ") WITH (fillfactor = 50);\n";
}

std::string create_sequences_sql(const TableName& t, bool if_not_exists) {
    const std::string ine = if_not_exists ? "IF NOT EXISTS " : "";
    return "CREATE SEQUENCE " + ine + t.quoted_sequence("_rvn") + " CYCLE OWNED BY " +
           t.quoted() + ".record_version_number;\n" + "CREATE SEQUENCE " + ine +
           t.quoted_sequence("_fence") + " NO CYCLE OWNED BY " + t.quoted() + ".fencing_token;\n";
}

// The server's current timeline, from the name of the WAL file being written:
// it grows with every promotion at once (pg_control_checkpoint() lags until
// the next checkpoint).  Fails on a standby (SQLSTATE 55000).
constexpr const char* kTimeline =
    "('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::bigint";

// The epoch table: each timeline the lock table has been used on, and when
// this server first saw it (its own clock).  A table starts with the current
// timeline at -infinity, so only a later timeline is ever quarantined.
std::string create_epoch_sql(const TableName& t, bool if_not_exists) {
    const std::string epoch = t.quoted_sequence("_epoch");
    return std::string("CREATE TABLE ") + (if_not_exists ? "IF NOT EXISTS " : "") + epoch +
           " (\n    timeline BIGINT PRIMARY KEY,\n    first_seen TIMESTAMPTZ NOT NULL\n);\n" +
           "INSERT INTO " + epoch + " (timeline, first_seen) SELECT " + kTimeline +
           ", '-infinity' WHERE NOT EXISTS (SELECT 1 FROM " + epoch + ");\n";
}

std::string full_row_select(const TableName& t) {
    return "SELECT name, owner, data, record_version_number, fencing_token, "
           "extract(epoch FROM acquired_at)::float8, extract(epoch FROM renewed_at)::float8 FROM " +
           t.quoted();
}

// Conditions that identify this holder's acquisition of a row: a takeover by
// pgelect changes the token, one by pglock changes the owner.
constexpr const char* kHeldByMe =
    "name = $1 AND fencing_token = $2 AND owner = $3 AND record_version_number IS NOT NULL";

}  // namespace

Statements::Statements(const TableName& t) {
    const std::string table = t.quoted();
    const std::string rvn = "nextval(" + t.sequence_literal("_rvn") + ")";
    const std::string fence = "nextval(" + t.sequence_literal("_fence") + ")";

    const std::string epoch = t.quoted_sequence("_epoch");
    create = create_table_sql(t, false) + create_sequences_sql(t, false) +
             create_epoch_sql(t, false);
    try_create = create_table_sql(t, true) + "ALTER TABLE " + table +
                 " ADD COLUMN IF NOT EXISTS fencing_token BIGINT,"
                 " ADD COLUMN IF NOT EXISTS acquired_at TIMESTAMPTZ,"
                 " ADD COLUMN IF NOT EXISTS renewed_at TIMESTAMPTZ;\n" +
                 create_sequences_sql(t, true) + create_epoch_sql(t, true);
    drop = "DROP TABLE IF EXISTS " + table + ", " + epoch + ";\nDROP SEQUENCE IF EXISTS " +
           t.quoted_sequence("_rvn") + ", " + t.quoted_sequence("_fence") + ";\n";

    // The fencing token is drawn under a transaction-scoped advisory lock on
    // (table, name), taken before the draw and held until commit: acquisitions
    // of one name draw their tokens in commit order, so tokens strictly
    // increase from holder to holder, also on the insert path where no row
    // lock orders them (a holder may insert and delete the row meanwhile).
    // The key is the table's identity (its OID), not its spelling: "locks"
    // found through search_path and "app.locks" take the same lock.
    const std::string ordered_token = "(SELECT " + fence +
                                      " FROM (SELECT pg_advisory_xact_lock(" + t.regclass_literal() +
                                      "::regclass::oid::int4, hashtext($1::text))) AS ordered)";
    // Epoch tokens: the timeline times 2^40 plus the sequence value, so a
    // term begun after a promotion outranks every term before it, also when
    // the promoted server hands out sequence values the old primary had
    // already used (the tail of WAL it never received).
    //
    // Failover quarantine: on a timeline first seen less than one lease ago
    // (while the table has been used on another timeline), nothing is taken:
    // a holder whose acquisition was lost with the old primary may still
    // believe it leads until its renew deadline.  A timeline below the highest
    // recorded means the table was moved to another cluster: nothing is taken
    // until `pgelect schema bump-epoch`.  Both are decided here, in the one
    // statement; in steady state the epoch table is only read.
    const std::string take_gate =
        "tl AS (SELECT " + std::string(kTimeline) + " AS t), "
        "ep AS (SELECT max(e.timeline) AS top, bool_or(e.timeline <> tl.t) AS others, "
        "max(e.first_seen) FILTER (WHERE e.timeline = tl.t) AS since, "
        "count(*) FILTER (WHERE e.timeline = tl.t) AS known "
        "FROM tl LEFT JOIN " + epoch + " AS e ON true GROUP BY tl.t), "
        "seen AS (INSERT INTO " + epoch + " (timeline, first_seen) SELECT tl.t, now() "
        "FROM tl, ep WHERE ep.known = 0 AND (ep.top IS NULL OR tl.t > ep.top) "
        "ON CONFLICT (timeline) DO NOTHING RETURNING first_seen), "
        "gate AS (SELECT CASE WHEN ep.top IS NOT NULL AND tl.t < ep.top THEN -1 "
        "WHEN coalesce(ep.others, false) AND coalesce(ep.since, now()) + $7::bigint * "
        "interval '1 millisecond' > now() THEN greatest(1, ceil(extract(epoch FROM "
        "coalesce(ep.since, now()) + $7::bigint * interval '1 millisecond' - now()) * 1000))::bigint "
        "ELSE 0 END AS q FROM tl, ep)";
    acquire = "WITH " + take_gate + ", a AS (INSERT INTO " + table +
              " AS l (name, record_version_number, data, owner, fencing_token, acquired_at, "
              "renewed_at) SELECT $1::text, " + rvn + ", $2::bytea, $3::text, tl.t * 1099511627776 + " +
              ordered_token + ", now(), now() FROM gate, tl WHERE gate.q = 0 "
              "ON CONFLICT (name) DO UPDATE SET "
              "record_version_number = EXCLUDED.record_version_number, "
              "data = CASE WHEN $4::boolean THEN EXCLUDED.data ELSE l.data END, "
              // A takeover of an existing row never goes below the row's token,
              // even if the sequence was reset or lags (restored, promoted).
              "owner = EXCLUDED.owner, "
              "fencing_token = GREATEST(EXCLUDED.fencing_token, l.fencing_token + 1), "
              "acquired_at = now(), renewed_at = now() "
              "WHERE l.record_version_number IS NULL OR l.record_version_number = $5::bigint "
              "RETURNING l.record_version_number, l.data, l.fencing_token) "
              // Followers learn of the new holder at once (payload 'A' || name).
              "SELECT a.record_version_number, a.data, a.fencing_token, gate.q, tl.t, "
              "CASE WHEN a.record_version_number IS NOT NULL THEN pg_notify($6, 'A' || $1::text) END "
              "FROM gate CROSS JOIN tl LEFT JOIN a ON true";
    // Moves the table's tokens above every token it holds or could have
    // handed out, on the current timeline, and forgets later timelines: for a
    // move that resets timelines (pg_upgrade, dump/restore, logical
    // migration).  $1: a token the next ones must exceed (0: none).
    replication =
        "SELECT srv.recovery, srv.timeline, srv.sync_commit, srv.sync_names,"
        " s.pid IS NOT NULL, s.application_name, s.state, s.sync_state"
        " FROM (SELECT pg_is_in_recovery() AS recovery,"
        " CASE WHEN pg_is_in_recovery() THEN NULL ELSE " + std::string(kTimeline) + " END AS timeline,"
        " current_setting('synchronous_commit') AS sync_commit,"
        " current_setting('synchronous_standby_names') AS sync_names) AS srv"
        " LEFT JOIN pg_stat_replication s ON true ORDER BY s.application_name, s.pid";
    bump_epoch = "WITH tl AS (SELECT " + std::string(kTimeline) + " AS t), "
                 "top AS MATERIALIZED (SELECT greatest(coalesce((SELECT max(fencing_token) FROM " + table +
                 "), 0), $1::bigint, (SELECT coalesce(max(timeline), 0) FROM " + epoch +
                 ") * 1099511627776 + (SELECT last_value FROM " + t.quoted_sequence("_fence") +
                 ")) AS token), "
                 "gone AS (DELETE FROM " + epoch + " WHERE timeline <> (SELECT t FROM tl)), "
                 "mark AS (INSERT INTO " + epoch + " (timeline, first_seen) SELECT t, '-infinity' "
                 "FROM tl ON CONFLICT (timeline) DO UPDATE SET first_seen = '-infinity') "
                 "SELECT setval(" + t.sequence_literal("_fence") + ", greatest(1, top.token - "
                 "tl.t * 1099511627776 + 1)), tl.t, top.token FROM tl, top";
    resolve_table = "SELECT n.nspname, c.relname FROM pg_catalog.pg_class AS c "
                    "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
                    "WHERE c.oid = to_regclass($1::text)";
    // One statement for every contender of a client that waits (Poller).
    poll = "SELECT name, record_version_number, owner, fencing_token FROM " + table +
           " WHERE name = ANY($1::text[])";
    // Waiters are woken at once (payload 'R' || name).
    release_delete = "WITH r AS (DELETE FROM " + table + " WHERE " + kHeldByMe +
                     " RETURNING name) SELECT pg_notify($4, 'R' || name) FROM r";
    release_keep = "WITH r AS (UPDATE " + table + " SET record_version_number = NULL WHERE " +
                   kHeldByMe + " RETURNING name) SELECT pg_notify($4, 'R' || name) FROM r";
    // Rows still held by these acquisitions are renewed, except those locked
    // by another transaction (a fenced write, a takeover in progress): they
    // are skipped, not waited for, and come back with a NULL version, so one
    // long transaction can neither stall the renewal of every other lock nor
    // have a queued renewal refresh a term after its holder's deadline.
    // A lock missing from the result is no longer held by that acquisition.
    renew = "WITH r AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) "
            "AS r(name, token, owner)), "
            "mine AS (SELECT l.name, l.fencing_token FROM " + table + " AS l JOIN r "
            "ON l.name = r.name AND l.fencing_token = r.token AND l.owner = r.owner "
            "WHERE l.record_version_number IS NOT NULL), "
            "free AS (SELECT l.name, l.fencing_token FROM " + table + " AS l JOIN mine AS m "
            "ON l.name = m.name AND l.fencing_token = m.fencing_token "
            "WHERE l.record_version_number IS NOT NULL FOR NO KEY UPDATE OF l SKIP LOCKED), "
            "u AS (UPDATE " + table + " AS l SET record_version_number = " + rvn +
            ", renewed_at = now() FROM free AS f "
            "WHERE l.name = f.name AND l.fencing_token = f.fencing_token "
            "RETURNING l.name, l.fencing_token, l.record_version_number) "
            // Two plain lists, merged by the client: a join of the two CTEs
            // ran as a nested loop (the planner expects few rows from unnest),
            // 10^8 comparisons and 5 s for 10,000 locks.
            "SELECT name, fencing_token, record_version_number FROM u "
            "UNION ALL SELECT name, fencing_token, NULL FROM mine "
            // The server's timeline, for the failover metrics.
            "UNION ALL SELECT NULL, NULL, " + std::string(kTimeline);
    set_data = "UPDATE " + table + " SET data = $4 WHERE " + kHeldByMe + " RETURNING 1";
    get_one = full_row_select(t) + " WHERE name = $1";
    get_all = full_row_select(t) + " ORDER BY name";
    // FOR SHARE, not FOR KEY SHARE: the takeover's UPDATE must wait for it.
    fence_check = "SELECT 1 FROM " + table + " WHERE " + kHeldByMe + " FOR SHARE";
}

void Statements::prepare_on(pqxx::connection_base& conn) const {
    conn.prepare(kAcquire, acquire);
    conn.prepare(kPoll, poll);
    conn.prepare(kReleaseDelete, release_delete);
    conn.prepare(kReleaseKeep, release_keep);
    conn.prepare(kRenew, renew);
    conn.prepare(kSetData, set_data);
    conn.prepare(kGetOne, get_one);
    conn.prepare(kGetAll, get_all);
}

}  // namespace pgelect::detail
