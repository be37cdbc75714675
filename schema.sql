-- pgelect lock table (default name "locks"); what LockClient::create_table() runs.
-- The first four columns and locks_rvn are those of the Go library pglock;
-- locks_epoch lists the server timelines the table has been used on (docs/ha.md).
CREATE TABLE "locks" (
    name CHARACTER VARYING(255) PRIMARY KEY,
    record_version_number BIGINT,
    data BYTEA,
    owner CHARACTER VARYING(255),
    fencing_token BIGINT,
    acquired_at TIMESTAMPTZ,
    renewed_at TIMESTAMPTZ
) WITH (fillfactor = 50);
CREATE SEQUENCE "locks_rvn" CYCLE OWNED BY "locks".record_version_number;
CREATE SEQUENCE "locks_fence" NO CYCLE OWNED BY "locks".fencing_token;
CREATE TABLE "locks_epoch" (
    timeline BIGINT PRIMARY KEY,
    first_seen TIMESTAMPTZ NOT NULL
);
INSERT INTO "locks_epoch" (timeline, first_seen) SELECT ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::bigint, '-infinity' WHERE NOT EXISTS (SELECT 1 FROM "locks_epoch");
