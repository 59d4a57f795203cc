-- 0014: several Sluice nodes on one catalog (docs/cluster.md). Each node
-- registers itself in sluice.nodes and heartbeats; a node silent for longer
-- than its node_timeout is gone. A mirror's flow runs on the node holding
-- its stream lease: node (NULL: nobody), lease_epoch (raised by every
-- acquisition, the fencing token the flow's catalog writes are checked
-- against) and lease_expires_at (renewed by the owner's heartbeat; with
-- node NULL, a time before which only a statement may take the lease: a
-- Stop in progress reserves it). lease_release asks the owner to stop the
-- flow and give the lease up (Stop issued on another node).

CREATE TABLE sluice.nodes (
    id           text PRIMARY KEY,
    address      text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz,
    node_timeout interval NOT NULL DEFAULT '15 seconds'
);

CREATE VIEW sluice_status.nodes AS
SELECT id, address, started_at, heartbeat_at AS last_heartbeat,
       CASE WHEN stopped_at IS NOT NULL THEN 'stopped'
            WHEN heartbeat_at < now() - node_timeout THEN 'gone'
            ELSE 'alive' END AS status
FROM sluice.nodes;

ALTER TABLE sluice.mirrors
    ADD COLUMN node text,
    ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN lease_release boolean NOT NULL DEFAULT false;

CREATE OR REPLACE VIEW sluice_status.mirrors AS
SELECT name, source_peer, destination_peer,
       CASE WHEN desired = 'PAUSED' THEN 'PAUSED'
            WHEN error IS NOT NULL THEN 'FAILED'
            WHEN phase = 'CDC' THEN 'RUNNING'
            ELSE phase END AS status,
       lag_bytes, sluice.lsn(last_synced_lsn) AS last_synced_lsn, last_synced_at, rows_synced, error,
       NULLIF(publication_name, '') AS publication_name, NULLIF(slot_name, '') AS slot_name, created_at,
       resync IS NOT NULL AS resyncing,
       lag_measured_at, slot_wal_status, slot_safe_wal_size, last_synced_shown AS position,
       EXTRACT(epoch FROM last_synced_at - last_source_commit_at)::double precision AS lag_seconds,
       last_source_commit_at, node
FROM sluice.mirrors;
