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

    create = create_table_sql(t, false) + create_sequences_sql(t, false);
    try_create = create_table_sql(t, true) + "ALTER TABLE " + table +
                 " ADD COLUMN IF NOT EXISTS fencing_token BIGINT,"
                 " ADD COLUMN IF NOT EXISTS acquired_at TIMESTAMPTZ,"
                 " ADD COLUMN IF NOT EXISTS renewed_at TIMESTAMPTZ;\n" +
                 create_sequences_sql(t, true);
    drop = "DROP TABLE IF EXISTS " + table + ";\nDROP SEQUENCE IF EXISTS " +
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
    acquire = "WITH a AS (INSERT INTO " + table +
              " AS l (name, record_version_number, data, owner, fencing_token, acquired_at, "
              "renewed_at) VALUES ($1::text, " + rvn + ", $2, $3, " + ordered_token +
              ", now(), now()) ON CONFLICT (name) DO UPDATE SET "
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
              "SELECT a.*, pg_notify($6, 'A' || $1::text) FROM a";
    resolve_table = "SELECT n.nspname, c.relname FROM pg_catalog.pg_class AS c "
                    "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
                    "WHERE c.oid = to_regclass($1::text)";
    poll = "SELECT record_version_number, owner, fencing_token FROM " + table + " WHERE name = $1";
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
            "RETURNING l.name, l.record_version_number) "
            "SELECT m.name, m.fencing_token, u.record_version_number FROM mine AS m "
            "LEFT JOIN u ON u.name = m.name";
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
