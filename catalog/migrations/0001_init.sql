-- 0001: peers, settings and the first status view.
--
-- Internal tables live in schema sluice and are written only by sluice.
-- Front-end sessions see the catalog through the read-only views in schema
-- sluice_status, which never expose a secret.

CREATE TABLE sluice.peers (
    name           text PRIMARY KEY,
    type           text NOT NULL,
    host           text,
    port           text,
    database       text,
    username       text,
    options_sealed bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sluice.settings (
    key   text PRIMARY KEY,
    value bytea
);

CREATE SCHEMA sluice_status;

CREATE VIEW sluice_status.peers AS
SELECT name, type, host, port, database, username AS "user", created_at
FROM sluice.peers;
