-- 0011: the results of VALIDATE MIRROR, one row per table compared, shown
-- in sluice_status.mirror_validations. Rows stay after the mirror is
-- dropped, like its events.

CREATE TABLE sluice.mirror_validations (
    id                bigserial PRIMARY KEY,
    mirror            text NOT NULL,
    validated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    mode              text NOT NULL,
    position          text NOT NULL,
    source_table      text NOT NULL,
    source_rows       bigint NOT NULL,
    destination_rows  bigint NOT NULL,
    mismatched_ranges text[],
    status            text NOT NULL
);
CREATE INDEX ON sluice.mirror_validations (mirror, id);

CREATE VIEW sluice_status.mirror_validations AS
SELECT mirror, validated_at, mode, position, source_table, source_rows, destination_rows,
       mismatched_ranges, status
FROM sluice.mirror_validations;
