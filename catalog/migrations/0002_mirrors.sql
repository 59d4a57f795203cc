-- 0002: CDC mirrors, their tables, their events, and the status views.
--
-- A mirror's flow is a sequence of resumable phases (SETUP, SNAPSHOT, CDC)
-- whose progress lives here; desired is the operator's intent (RUNNING or
-- PAUSED); error is set while a failing step is being retried.

CREATE TABLE sluice.mirrors (
    name             text PRIMARY KEY,
    source_peer      text NOT NULL REFERENCES sluice.peers (name),
    destination_peer text NOT NULL REFERENCES sluice.peers (name),
    options          jsonb NOT NULL DEFAULT '{}',
    phase            text NOT NULL DEFAULT 'SETUP',
    desired          text NOT NULL DEFAULT 'RUNNING',
    publication_name text NOT NULL,
    slot_name        text NOT NULL,
    consistent_lsn   bigint,
    last_synced_lsn  bigint,
    last_synced_at   timestamptz,
    rows_synced      bigint NOT NULL DEFAULT 0,
    lag_bytes        bigint,
    error            text,
    error_count      integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sluice.mirror_tables (
    mirror            text NOT NULL REFERENCES sluice.mirrors (name) ON DELETE CASCADE,
    source_table      text NOT NULL,
    destination_table text NOT NULL,
    ordinal           integer NOT NULL,
    partition_key     text,
    exclude           text[] NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'pending',
    partitions        jsonb,
    partitions_total  integer NOT NULL DEFAULT 0,
    partitions_done   integer NOT NULL DEFAULT 0,
    rows_copied       bigint NOT NULL DEFAULT 0,
    rows_estimated    bigint NOT NULL DEFAULT 0,
    inserts           bigint NOT NULL DEFAULT 0,
    updates           bigint NOT NULL DEFAULT 0,
    deletes           bigint NOT NULL DEFAULT 0,
    resync_status     text,
    PRIMARY KEY (mirror, source_table)
);

CREATE TABLE sluice.mirror_events (
    id      bigserial PRIMARY KEY,
    mirror  text NOT NULL,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind    text NOT NULL,
    message text NOT NULL
);
CREATE INDEX ON sluice.mirror_events (mirror, id);

CREATE FUNCTION sluice.lsn(v bigint) RETURNS pg_lsn
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT (to_hex(v >> 32) || '/' || to_hex(v & 4294967295))::pg_lsn $$;

CREATE VIEW sluice_status.mirrors AS
SELECT name, source_peer, destination_peer,
       CASE WHEN desired = 'PAUSED' THEN 'PAUSED'
            WHEN error IS NOT NULL THEN 'FAILED'
            WHEN phase = 'CDC' THEN 'RUNNING'
            ELSE phase END AS status,
       lag_bytes, sluice.lsn(last_synced_lsn) AS last_synced_lsn, last_synced_at, rows_synced, error,
       publication_name, slot_name, created_at
FROM sluice.mirrors;

CREATE VIEW sluice_status.mirror_tables AS
SELECT mirror, source_table, destination_table, status, rows_copied, rows_estimated,
       partitions_done, partitions_total, inserts, updates, deletes, resync_status
FROM sluice.mirror_tables;

CREATE VIEW sluice_status.mirror_events AS
SELECT mirror, at, kind, message FROM sluice.mirror_events;
