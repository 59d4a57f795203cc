-- 0009: positions. A mirror's positions in its source's change history are
-- opaque to the flows (connectors.Position: text made by the source that
-- orders bytewise) and are kept in text columns:
--   consistent_position   where the stream starts after the initial load
--   last_synced_position  the end of the last applied batch
-- The bigint columns stay, so that sluice_status.mirrors (which shows
-- last_synced_lsn as a pg_lsn) and anything reading them see what they
-- saw before:
--   consistent_lsn   the initial load's version as a number (the version
--                    ClickHouse rows of the load carry; for a Postgres
--                    source, the consistent point's LSN), written with the
--                    position (catalog.SetConsistentPosition)
--   last_synced_lsn  the Postgres LSN of last_synced_position, or NULL
--                    when the position is not a Postgres LSN, written by
--                    catalog.RecordSync with sluice.position_lsn
-- Existing mirrors get their positions from the bigint columns in the
-- Postgres encoding of an LSN (postgres.LSNPosition): 16 upper-case
-- hexadecimal digits, NULL for NULL or 0 (sluice.lsn_position). No view
-- changes.

CREATE FUNCTION sluice.lsn_position(v bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT CASE WHEN v <> 0 THEN lpad(upper(to_hex(v)), 16, '0') END $$;

CREATE FUNCTION sluice.position_lsn(p text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT CASE WHEN p ~ '^[0-9A-F]{16}$' THEN ('x' || p)::bit(64)::bigint END $$;

ALTER TABLE sluice.mirrors
    ADD COLUMN consistent_position text,
    ADD COLUMN last_synced_position text;

UPDATE sluice.mirrors
SET consistent_position = sluice.lsn_position(consistent_lsn),
    last_synced_position = sluice.lsn_position(last_synced_lsn);
