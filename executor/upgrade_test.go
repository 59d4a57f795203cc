package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/sluicedb/sluice/catalog"
)

// The upgrade to positions (catalog migration 0009 and the position
// columns of the destination's metadata): a catalog and destination
// metadata written before it are upgraded when sluice starts, and their
// mirrors go on. A catalog from before is made here from a running
// mirror's by undoing exactly what the upgrade adds; what remains is what
// the older Sluice wrote (the LSN columns, which Sluice still keeps).

// downgradeCatalog undoes migration 0009 on the catalog database, and the
// migrations after it, which a catalog from before 0009 does not have:
// 0010's column (dropping it drops the status view, made again as 0006
// made it), 0011's validations and 0012's table holds (the mirror_tables
// view made again as 0008 made it), 0013's lag history, 0014's nodes
// and stream leases, 0016's jobs view (River's tables, which 0015 and
// 0016 made, are removed by River's own down migrations: downgradeRiver)
// and 0017's columns of the periodic jobs (mirror_lag_history's goes with
// its table).
const downgradeCatalog = `
ALTER TABLE sluice.mirrors DROP COLUMN slot_active CASCADE, DROP COLUMN lag_warning;
DROP VIEW sluice_status.jobs;
DROP VIEW sluice_status.nodes;
DROP TABLE sluice.nodes;
ALTER TABLE sluice.mirrors DROP COLUMN node CASCADE, DROP COLUMN lease_epoch, DROP COLUMN lease_expires_at,
    DROP COLUMN lease_release;
DROP VIEW sluice_status.mirror_lag_history;
DROP TABLE sluice.mirror_lag_history;
ALTER TABLE sluice.mirrors DROP COLUMN last_source_commit_at CASCADE;
ALTER TABLE sluice.mirror_tables DROP COLUMN error CASCADE, DROP COLUMN hold_request;
CREATE VIEW sluice_status.mirror_tables AS
SELECT mirror, source_table, destination_table, status, rows_copied, rows_estimated,
       partitions_done, partitions_total, inserts, updates, deletes, resync_status,
       resync_strategy, resync_error, resync_started_at, resync_finished_at, order_by,
       step, step_started_at
FROM sluice.mirror_tables;
DROP VIEW sluice_status.mirror_validations;
DROP TABLE sluice.mirror_validations;
ALTER TABLE sluice.mirrors DROP COLUMN last_synced_shown CASCADE;
CREATE VIEW sluice_status.mirrors AS
SELECT name, source_peer, destination_peer,
       CASE WHEN desired = 'PAUSED' THEN 'PAUSED'
            WHEN error IS NOT NULL THEN 'FAILED'
            WHEN phase = 'CDC' THEN 'RUNNING'
            ELSE phase END AS status,
       lag_bytes, sluice.lsn(last_synced_lsn) AS last_synced_lsn, last_synced_at, rows_synced, error,
       publication_name, slot_name, created_at, resync IS NOT NULL AS resyncing,
       lag_measured_at, slot_wal_status, slot_safe_wal_size
FROM sluice.mirrors;
ALTER TABLE sluice.mirrors DROP COLUMN consistent_position, DROP COLUMN last_synced_position;
DROP FUNCTION sluice.lsn_position(bigint);
DROP FUNCTION sluice.position_lsn(text);
DELETE FROM sluice.schema_migrations WHERE version >= 9`

// downgradeRiver undoes River's migrations (catalog migrations 0015 and
// 0016) on the catalog, in schema sluice, after downgradeCatalog dropped
// the view over River's jobs.
func downgradeRiver(t *testing.T, cat *pgx.Conn) {
	t.Helper()
	m, err := rivermigrate.New(riverpgxv5.New(nil), &rivermigrate.Config{Schema: catalog.RiverSchema})
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(testCtx(t), cat, func(tx pgx.Tx) error {
		_, err := m.MigrateTx(testCtx(t), tx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
		return err
	})
	if err != nil {
		t.Fatalf("undo river's migrations: %v", err)
	}
}

// downgradeMetadata undoes the position columns of the destination's
// metadata.
const downgradeMetadata = `
ALTER TABLE _sluice.mirror_state DROP COLUMN position;
ALTER TABLE _sluice.table_state DROP COLUMN position`

// TestMirrorUpgradeToPositions: a Postgres to Postgres mirror whose
// catalog and destination metadata are from before positions goes on
// after the upgrade, showing the same status, and then applies the
// changes made while sluice was down, each once.
func TestMirrorUpgradeToPositions(t *testing.T) {
	p := startProcess(t)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g`)
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(dstURL)+")")
	mustExec(t, conn, "CREATE MIRROR up FROM src TO dst WITH TABLE MAPPING (t:t)")
	conn.Close(context.Background())
	waitFor(t, p, "streaming", func(c *pgx.Conn) bool {
		var status string
		return c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'up'`).Scan(&status) == nil &&
			status == "RUNNING"
	})
	mustExec(t, src, `INSERT INTO t SELECT g, 'new' FROM generate_series(2001, 2100) g;
UPDATE t SET v = 'upd' WHERE id <= 50;
DELETE FROM t WHERE id BETWEEN 51 AND 60`)
	waitEqual(t, src, dst, "t", "t", "id")
	// status shows the mirror's columns that do not move on their own
	// (lag is measured every few seconds), and its table's counts.
	status := func(c *pgx.Conn) string {
		var s string
		err := c.QueryRow(context.Background(), `
SELECT concat_ws(' | ', m.status, m.last_synced_lsn, extract(epoch FROM m.last_synced_at), m.rows_synced, m.error,
       m.publication_name, m.slot_name, extract(epoch FROM m.created_at), m.resyncing, t.status, t.inserts, t.updates,
       t.deletes)
FROM mirrors m JOIN mirror_tables t ON t.mirror = m.name WHERE m.name = 'up'`).Scan(&s)
		if err != nil {
			return err.Error()
		}
		return s
	}
	var before string
	waitFor(t, p, "the last batch recorded", func(c *pgx.Conn) bool {
		var rows int64
		if c.QueryRow(context.Background(), `SELECT rows_synced FROM mirrors WHERE name = 'up'`).Scan(&rows) != nil || rows != 160 {
			return false
		}
		before = status(c)
		return true
	})

	cat, err := pgx.Connect(testCtx(t), p.CatalogURL())
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close(context.Background())
	mustExec(t, cat, "SET search_path = sluice_status")
	downgrade := func() {
		t.Helper()
		p.Stop()
		mustExec(t, cat, downgradeCatalog)
		downgradeRiver(t, cat)
		mustExec(t, dst, downgradeMetadata)
	}
	// upgraded checks the upgrade; written: a batch was applied since, so
	// the destination's row has its position (before, it reads its LSN).
	upgraded := func(written bool) {
		t.Helper()
		var version int
		var consistent, synced *string
		if err := cat.QueryRow(testCtx(t), `SELECT (SELECT max(version) FROM sluice.schema_migrations),
       consistent_position, last_synced_position FROM sluice.mirrors WHERE name = 'up'`).Scan(&version, &consistent, &synced); err != nil {
			t.Fatal(err)
		}
		if version < 9 || consistent == nil || synced == nil {
			t.Fatalf("after the upgrade: version %d, positions %v %v", version, consistent, synced)
		}
		var n int
		if err := dst.QueryRow(testCtx(t), `SELECT count(*) FROM _sluice.mirror_state WHERE mirror = 'up'
  AND coalesce(position = lpad(upper(to_hex(lsn)), 16, '0'), NOT $1)`, written).Scan(&n); err != nil || n != 1 {
			t.Fatalf("destination position after the upgrade: %d rows (%v)", n, err)
		}
	}

	// Upgraded with nothing to apply: the status is what it was.
	downgrade()
	catalogShown := status(cat)
	p.Start()
	waitFor(t, p, "the mirror streaming again", func(c *pgx.Conn) bool {
		var status string
		return c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'up'`).Scan(&status) == nil &&
			status == "RUNNING"
	})
	time.Sleep(time.Second) // the stream runs: nothing to apply, nothing recorded
	upgraded(false)
	c := connect(t, p.URL())
	if got := status(c); got != before || catalogShown != before {
		t.Fatalf("status after the upgrade:\n%s\nbefore the upgrade, of the old catalog:\n%s\nbefore:\n%s", got, catalogShown, before)
	}
	c.Close(context.Background())

	// Upgraded again (from what this Sluice wrote), with changes made while
	// it was down: applied, each once.
	downgrade()
	mustExec(t, src, `INSERT INTO t SELECT g, 'later' FROM generate_series(2101, 2150) g;
UPDATE t SET v = 'upd2' WHERE id BETWEEN 100 AND 129;
DELETE FROM t WHERE id BETWEEN 200 AND 219`)
	p.Start()
	waitEqual(t, src, dst, "t", "t", "id")
	upgraded(true)
	want := fmt.Sprintf("RUNNING | %d | %d %d %d", 160+100, 100+50, 50+30, 10+20)
	waitFor(t, p, "the changes counted once", func(c *pgx.Conn) bool {
		var got string
		err := c.QueryRow(context.Background(), `
SELECT concat_ws(' | ', m.status, m.rows_synced, concat_ws(' ', t.inserts, t.updates, t.deletes))
FROM mirrors m JOIN mirror_tables t ON t.mirror = m.name WHERE m.name = 'up'`).Scan(&got)
		return err == nil && got == want
	})
	// last_synced_lsn is the LSN of the position, beyond the one before.
	var inStep, moved bool
	if err := cat.QueryRow(testCtx(t), `SELECT last_synced_lsn = sluice.position_lsn(last_synced_position),
       sluice.lsn(last_synced_lsn) > $1::pg_lsn FROM sluice.mirrors WHERE name = 'up'`, lsnOf(before)).Scan(&inStep, &moved); err != nil || !inStep || !moved {
		t.Fatalf("last_synced_lsn in step with the position: %v, moved on: %v (%v)", inStep, moved, err)
	}
}

// lsnOf is the last_synced_lsn in a status line of the upgrade test.
func lsnOf(status string) string {
	if f := strings.Split(status, " | "); len(f) > 1 {
		return f[1]
	}
	return status
}
