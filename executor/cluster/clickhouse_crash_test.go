package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// The crash tests into ClickHouse: a sluice process killed with SIGKILL
// while it streams, resyncs or writes a large transaction into
// ClickHouse, restarted, and the FINAL view compared with the source.

// TestClickHouseKillAndRestart kills sluice mid-load and mid-CDC of a
// mirror into ClickHouse, under a pgbench workload: the FINAL view
// converges to the source.
func TestClickHouseKillAndRestart(t *testing.T) {
	ch := testbed.ClickHouseFor(t)
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL := peerCluster.NewDB(t)
	src := connect(t, srcURL)
	pgbench(t, srcURL, "-i", "-s", "3", "-q")
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "2", "-T", "15")
	}()
	mustExec(t, conn, `CREATE MIRROR chk FROM src TO ch WITH TABLE MAPPING (pgbench_accounts:pgbench_accounts, pgbench_tellers:pgbench_tellers)
		WITH (snapshot_num_rows_per_partition = 10000, snapshot_max_parallel_workers = 1, max_batch_size = 500)`)
	conn.Close(context.Background())
	p.WaitFor("a partly done load", func(c *pgx.Conn) bool {
		var done int
		err := c.QueryRow(context.Background(), `SELECT partitions_done FROM mirror_tables
			WHERE mirror = 'chk' AND source_table = 'public.pgbench_accounts'`).Scan(&done)
		return err == nil && done >= 3
	}, nil)
	p.Kill()
	p.Start()
	p.WaitFor("streaming", func(c *pgx.Conn) bool {
		var status string
		err := c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'chk'`).Scan(&status)
		return err == nil && status == "RUNNING"
	}, nil)
	for range 2 {
		time.Sleep(1500 * time.Millisecond)
		p.Kill()
		p.Start()
	}
	<-load
	testbed.WaitSame(t, src, `SELECT aid || '|' || bid || '|' || abalance FROM pgbench_accounts ORDER BY aid`, ch,
		`SELECT concat(toString(aid), '|', toString(bid), '|', toString(abalance)) FROM pgbench_accounts FINAL WHERE _sluice_is_deleted = 0 ORDER BY aid`)
	testbed.WaitSame(t, src, `SELECT tid || '|' || tbalance FROM pgbench_tellers ORDER BY tid`, ch,
		`SELECT concat(toString(tid), '|', toString(tbalance)) FROM pgbench_tellers FINAL WHERE _sluice_is_deleted = 0 ORDER BY tid`)
}

// TestClickHouseKillDuringResync kills sluice in the middle of each kind of
// resync into ClickHouse (a table with each strategy, then the whole
// mirror), under a pgbench workload: every resync finishes after the
// restart, the FINAL view equals the source, rows deleted before the
// resyncs stay marked deleted (in the column soft_delete_col_name names),
// and no shadow or old table is left.
func TestClickHouseKillDuringResync(t *testing.T) {
	ch := testbed.ClickHouseFor(t)
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL := peerCluster.NewDB(t)
	src := connect(t, srcURL)
	pgbench(t, srcURL, "-i", "-s", "3", "-q")
	mustExec(t, src, `DELETE FROM pgbench_accounts WHERE aid BETWEEN 100 AND 109`)
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	mustExec(t, conn, `CREATE MIRROR chr FROM src TO ch WITH TABLE MAPPING (pgbench_accounts:pgbench_accounts, pgbench_tellers:pgbench_tellers)
		WITH (snapshot_num_rows_per_partition = 10000, snapshot_max_parallel_workers = 1,
		      soft_delete_col_name = 'gone', synced_at_col_name = 'synced')`)
	conn.Close(context.Background())
	status := func(c *pgx.Conn) (mirror, resync string, resyncing bool, done int) {
		_ = c.QueryRow(context.Background(), `SELECT m.status, coalesce(t.resync_status, ''), m.resyncing, t.partitions_done
			FROM mirrors m JOIN mirror_tables t ON t.mirror = m.name
			WHERE m.name = 'chr' AND t.source_table = 'public.pgbench_accounts'`).Scan(&mirror, &resync, &resyncing, &done)
		return
	}
	p.WaitFor("streaming", func(c *pgx.Conn) bool { m, _, _, _ := status(c); return m == "RUNNING" }, nil)
	// Rows deleted while streaming: they must stay marked deleted through
	// every resync.
	mustExec(t, src, `DELETE FROM pgbench_accounts WHERE aid BETWEEN 200 AND 209`)

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "2", "-T", "30")
	}()
	for _, stmt := range []string{
		"RESYNC TABLE chr.pgbench_accounts WITH (strategy = 'swap', order_by = 'aid')",
		"RESYNC TABLE chr.pgbench_accounts WITH (strategy = 'truncate')",
		"RESYNC MIRROR chr",
	} {
		c := connect(t, p.URL())
		mustExec(t, c, stmt)
		c.Close(context.Background())
		full := strings.HasPrefix(stmt, "RESYNC MIRROR")
		p.WaitFor("a partly done copy after "+stmt, func(c *pgx.Conn) bool {
			_, resync, resyncing, done := status(c)
			return (resync == "in_progress" || full && resyncing) && done >= 3
		}, nil)
		p.Kill()
		p.Start()
		p.WaitFor("the resync done after "+stmt, func(c *pgx.Conn) bool {
			m, resync, resyncing, _ := status(c)
			return m == "RUNNING" && !resyncing && (full || resync == "done")
		}, nil)
	}
	<-load
	testbed.WaitSame(t, src, `SELECT aid || '|' || bid || '|' || abalance FROM pgbench_accounts ORDER BY aid`, ch,
		`SELECT concat(toString(aid), '|', toString(bid), '|', toString(abalance)) FROM pgbench_accounts FINAL WHERE gone = 0 ORDER BY aid`)
	testbed.WaitSame(t, src, `SELECT tid || '|' || tbalance FROM pgbench_tellers ORDER BY tid`, ch,
		`SELECT concat(toString(tid), '|', toString(tbalance)) FROM pgbench_tellers FINAL WHERE gone = 0 ORDER BY tid`)
	if got := testbed.CHRows(t, ch, `SELECT toString(count()) FROM pgbench_accounts FINAL WHERE gone = 1`); len(got) != 1 || got[0] != "10" {
		t.Fatalf("rows marked deleted after the resyncs: %q, want the 10 deleted while streaming", got)
	}
	if cols := testbed.CHRows(t, ch, `SELECT name FROM system.columns WHERE database = 'default' AND table = 'pgbench_accounts'
		AND name NOT IN ('aid', 'bid', 'abalance', 'filler') ORDER BY name`); strings.Join(cols, ",") != "_sluice_version,gone,synced" {
		t.Fatalf("Sluice's columns after the resyncs: %q, want _sluice_version,gone,synced", cols)
	}
	if left := testbed.CHRows(t, ch, `SELECT name FROM system.tables WHERE database = 'default' AND (name LIKE '%_resync' OR name LIKE '%_sluice_old')`); len(left) != 0 {
		t.Fatalf("tables left behind: %q", left)
	}
	var slots int
	if err := src.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots); err != nil || slots != 1 {
		t.Fatalf("%d replication slots on the source, want the mirror's one (%v)", slots, err)
	}
}

// TestClickHouseKillDuringLargeTransaction: kill -9 while Sluice writes one
// source transaction far larger than it keeps in memory into ClickHouse
// (written in blocks as it comes, before the position is recorded at its
// end): after the restart the source sends it again, the same rows with
// the same versions, and the FINAL view ends equal to the source. The
// first is killed while it fills its stage (sent before its commit), the
// second (a key change and deletes by key, which cannot be staged: it
// comes at its commit) while its rows are written to the table; no stage
// is left.
func TestClickHouseKillDuringLargeTransaction(t *testing.T) {
	ch := testbed.ClickHouseFor(t)
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL := peerCluster.NewDB(t)
	src := connect(t, srcURL)
	pgbench(t, srcURL, "-i", "-s", "2", "-q")
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	mustExec(t, conn, `CREATE MIRROR chbig FROM src TO ch WITH TABLE MAPPING (pgbench_accounts:pgbench_accounts)
		WITH (max_batch_size = 10000)`)
	conn.Close(context.Background())
	const pgQuery = `SELECT aid || '|' || bid || '|' || abalance || '|' || rtrim(filler) FROM pgbench_accounts ORDER BY aid`
	const chQuery = `SELECT concat(toString(aid), '|', toString(bid), '|', toString(abalance), '|', replaceRegexpOne(filler, ' +$', ''))
		FROM pgbench_accounts FINAL WHERE _sluice_is_deleted = 0 ORDER BY aid`
	testbed.WaitSame(t, src, pgQuery, ch, chQuery)

	for i, step := range []struct{ sql, written string }{
		{`UPDATE pgbench_accounts SET abalance = abalance + 7, filler = 'big' || aid`,
			`SELECT toString(count()) FROM system.tables WHERE database = currentDatabase() AND name LIKE 'pgbench_accounts_sluice_stage%'`},
		{`BEGIN; UPDATE pgbench_accounts SET aid = aid + 1000000 WHERE aid % 10 = 0;
		 INSERT INTO pgbench_accounts SELECT g, 1, g, 'new' FROM generate_series(2000001, 2150000) g;
		 DELETE FROM pgbench_accounts WHERE aid % 7 = 0; COMMIT`,
			`SELECT toString(count()) FROM pgbench_accounts WHERE aid > 1000000`},
	} {
		mustExec(t, src, step.sql)
		deadline := time.Now().Add(time.Minute)
		for {
			if rows := testbed.CHRows(t, ch, step.written); len(rows) == 1 && rows[0] != "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d: no row of the transaction written", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
		p.Kill()
		p.Start()
	}
	testbed.WaitSame(t, src, pgQuery, ch, chQuery)
	if rows := testbed.CHRows(t, ch, `SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE '%sluice_stage%'`); len(rows) != 0 {
		t.Fatalf("stage tables left: %q", rows)
	}
}
