-- 0004: the sorting key of a table on a ClickHouse destination (the
-- mapping's order_by; empty: the primary key).

ALTER TABLE sluice.mirror_tables ADD COLUMN order_by text[] NOT NULL DEFAULT '{}';
