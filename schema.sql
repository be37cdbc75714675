-- pgelect lock table (default name "locks"); what LockClient::create_table() runs.
-- The first four columns and locks_rvn are those of the Go library pglock.
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
