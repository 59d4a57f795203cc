package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/all"
	"github.com/sluicedb/sluice/internal/testbed"
)

// The crash tests run the real sluice binary and kill it with SIGKILL at
// chosen moments, as an operator's machine would.

func TestKillAndRestart(t *testing.T) {
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	pgbench(t, srcURL, "-i", "-s", "3", "-q")

	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "3", "-T", "25")
	}()
	mustExec(t, conn, `CREATE MIRROR crash FROM src TO dst WITH TABLE MAPPING (
		pgbench_accounts:pgbench_accounts, pgbench_branches:pgbench_branches, pgbench_tellers:pgbench_tellers)
		WITH (snapshot_num_rows_per_partition = 15000, snapshot_max_parallel_workers = 2, max_batch_size = 500)`)
	conn.Close(context.Background())

	// Mid-snapshot: some partitions done, not all.
	p.WaitFor("a partly done snapshot", func(c *pgx.Conn) bool {
		var done, total int
		err := c.QueryRow(context.Background(), `SELECT partitions_done, partitions_total FROM mirror_tables
			WHERE mirror = 'crash' AND source_table = 'public.pgbench_accounts'`).Scan(&done, &total)
		return err == nil && done >= 3
	}, nil)
	p.Kill()
	p.Start()

	// Mid-CDC, while pgbench writes: twice, a moment apart.
	p.WaitFor("streaming", func(c *pgx.Conn) bool {
		var status string
		err := c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'crash'`).Scan(&status)
		return err == nil && status == "RUNNING"
	}, nil)
	for i := 0; i < 2; i++ {
		time.Sleep(1500 * time.Millisecond)
		p.Kill()
		p.Start()
	}
	<-load
	p.WaitFor("an event saying the initial load resumed", func(c *pgx.Conn) bool {
		var n int
		err := c.QueryRow(context.Background(), `SELECT count(*) FROM mirror_events
			WHERE mirror = 'crash' AND kind = 'snapshot' AND message LIKE '%resumed%'`).Scan(&n)
		return err == nil && n == 1
	}, nil)
	for _, tbl := range testbed.PgbenchTables {
		waitEqual(t, src, dst, tbl.Name, tbl.Name, tbl.Key)
	}
	// The partitions cut off by the kill were copied again and counted
	// once: the count is that of the partitions the destination recorded
	// as loaded. (It need not be the table's 300000 rows: a row pgbench
	// moved into a partition copied after the restart, under a newer
	// snapshot, is copied twice, the second time upserted; one it moved
	// out of such a partition into one loaded before the kill is copied by
	// neither, and comes with CDC, which replays every change from the
	// slot's consistent point.)
	var copied, estimated int64
	p.WaitFor("the load's row count", func(c *pgx.Conn) bool {
		return c.QueryRow(context.Background(), `SELECT rows_copied, rows_estimated FROM mirror_tables
			WHERE mirror = 'crash' AND source_table = 'public.pgbench_accounts'`).Scan(&copied, &estimated) == nil
	}, nil)
	done := loadedPartitions(t, dstURL, "crash", connectors.TableName{Schema: "public", Name: "pgbench_accounts"})
	var loaded int64
	for _, rows := range done {
		loaded += rows
	}
	if copied != loaded || estimated != copied {
		t.Fatalf("pgbench_accounts: rows_copied %d, rows_estimated %d after the load, want both the %d rows of its %d loaded partitions",
			copied, estimated, loaded, len(done))
	}
}

func TestKillDuringSetup(t *testing.T) {
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	conn.Close(context.Background())
	// Each round kills sluice a moment after CREATE MIRROR returns (during
	// slot creation or the load), restarts it, and checks it converges.
	for i, delay := range []time.Duration{0, 30 * time.Millisecond, 150 * time.Millisecond} {
		name := fmt.Sprintf("setup%d", i)
		dest := fmt.Sprintf("t%d", i)
		c := connect(t, p.URL())
		mustExec(t, c, fmt.Sprintf("CREATE MIRROR %s FROM src TO dst WITH TABLE MAPPING (t:%s) WITH (snapshot_num_rows_per_partition = 2000)", name, dest))
		c.Close(context.Background())
		time.Sleep(delay)
		p.Kill()
		mustExec(t, src, fmt.Sprintf("UPDATE t SET v = v || '%d' WHERE id %% 100 = 0", i))
		p.Start()
		p.WaitFor(name+" running", func(c *pgx.Conn) bool {
			var status string
			err := c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = $1`, name).Scan(&status)
			return err == nil && status == "RUNNING"
		}, nil)
		waitEqual(t, src, dst, "t", dest, "id")
	}
	var slots int
	if err := src.QueryRow(context.Background(), "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()").Scan(&slots); err != nil || slots != 3 {
		t.Fatalf("%d slots for 3 mirrors (%v)", slots, err)
	}
}

// TestKillDuringResync kills sluice in the middle of each kind of resync,
// under a pgbench workload: a swap copy, a truncate copy, a full resync's
// load. Each restarted resync completes; the tables converge and no
// _resync table is left.
func TestKillDuringResync(t *testing.T) {
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	pgbench(t, srcURL, "-i", "-s", "4", "-q")
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	mustExec(t, conn, `CREATE MIRROR kr FROM src TO dst WITH TABLE MAPPING (`+testbed.PgbenchMapping+`)
		WITH (snapshot_num_rows_per_partition = 8000, snapshot_max_parallel_workers = 1)`)
	conn.Close(context.Background())
	status := func(c *pgx.Conn) (string, string, int) {
		var mirror, resync string
		var done int
		_ = c.QueryRow(context.Background(), `SELECT m.status, coalesce(t.resync_status, ''), t.partitions_done
			FROM mirrors m JOIN mirror_tables t ON t.mirror = m.name
			WHERE m.name = 'kr' AND t.source_table = 'public.pgbench_accounts'`).Scan(&mirror, &resync, &done)
		return mirror, resync, done
	}
	p.WaitFor("streaming", func(c *pgx.Conn) bool { m, _, _ := status(c); return m == "RUNNING" }, nil)

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "2", "-T", "30")
	}()
	for _, stmt := range []string{
		"RESYNC TABLE kr.pgbench_accounts WITH (strategy = 'swap')",
		"RESYNC TABLE kr.pgbench_accounts WITH (strategy = 'truncate')",
		"RESYNC MIRROR kr",
	} {
		c := connect(t, p.URL())
		mustExec(t, c, stmt)
		c.Close(context.Background())
		p.WaitFor("a partly done copy after "+stmt, func(c *pgx.Conn) bool {
			_, resync, done := status(c)
			return resync == "in_progress" && done >= 3 || strings.HasPrefix(stmt, "RESYNC MIRROR") && done >= 3
		}, nil)
		p.Kill()
		p.Start()
		p.WaitFor("the resync done after "+stmt, func(c *pgx.Conn) bool {
			m, resync, _ := status(c)
			return m == "RUNNING" && resync == "done"
		}, nil)
	}
	<-load
	for _, tbl := range testbed.PgbenchTables {
		waitEqual(t, src, dst, tbl.Name, tbl.Name, tbl.Key)
	}
	var shadows, slots int
	if err := dst.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\_resync'`).Scan(&shadows); err != nil || shadows != 0 {
		t.Fatalf("%d _resync tables left behind (%v)", shadows, err)
	}
	if err := src.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots); err != nil || slots != 1 {
		t.Fatalf("%d replication slots on the source, want the mirror's one (%v)", slots, err)
	}
}

// loadedPartitions reads, through the seam, the partitions of table that
// the destination at dbURL records loaded for mirror.
func loadedPartitions(t *testing.T, dbURL, mirror string, table connectors.TableName) map[int]int64 {
	t.Helper()
	ctx := testCtx(t)
	kind, _ := all.Registry().Lookup("POSTGRES")
	peer, err := kind.Parse(map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(peerCluster.Port()), "user": "postgres",
		"password": peerCluster.Password(), "database": testbed.DBName(dbURL)})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := peer.(connectors.DestinationPeer).OpenDestination(ctx, "sluice-test", mirror)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close(context.Background())
	done, err := dst.Loaded(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

// TestKillDuringLargeTransaction: kill -9 while Sluice is applying one
// source transaction far larger than it keeps in memory (the batcher and
// the applier forget each chunk once in the destination transaction, which
// commits only at the source transaction's end): after the restart the
// source sends the transaction again, and the destination ends equal to
// the source, with nothing lost or applied twice.
func TestKillDuringLargeTransaction(t *testing.T) {
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	pgbench(t, srcURL, "-i", "-s", "2", "-q")
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	mustExec(t, conn, `CREATE MIRROR big FROM src TO dst WITH TABLE MAPPING (pgbench_accounts:pgbench_accounts)
		WITH (max_batch_size = 10000)`)
	conn.Close(context.Background())
	waitEqual(t, src, dst, "pgbench_accounts", "pgbench_accounts", "aid")

	// applying waits until the mirror's destination transaction has written.
	applying := func() {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			var n int
			if err := dst.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				time.Sleep(300 * time.Millisecond) // some chunks in
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no destination transaction seen")
	}
	for _, sql := range []string{
		// Every row updated, some keys moved, then 150,000 inserted.
		`UPDATE pgbench_accounts SET abalance = abalance + 7, filler = 'big' || aid`,
		`BEGIN; UPDATE pgbench_accounts SET aid = aid + 1000000 WHERE aid % 10 = 0;
		 INSERT INTO pgbench_accounts SELECT g, 1, g, 'new' FROM generate_series(2000001, 2150000) g;
		 DELETE FROM pgbench_accounts WHERE aid % 7 = 0; COMMIT`,
	} {
		mustExec(t, src, sql)
		applying()
		p.Kill()
		p.Start()
	}
	waitEqual(t, src, dst, "pgbench_accounts", "pgbench_accounts", "aid")
}

// TestKillDuringResyncLeavesOtherTables kills sluice in the middle of a
// swap resync and of a mirror resync while a user's tables hold the first
// temporary names: after the restart each resync finds and replaces its
// own recorded shadow table, finishes, and leaves no table of its own and
// every table of the user's behind.
func TestKillDuringResyncLeavesOtherTables(t *testing.T) {
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	pgbench(t, srcURL, "-i", "-s", "3", "-q")
	theirs := []string{"pgbench_accounts_resync", "pgbench_tellers_resync", "pgbench_branches_resync_1"}
	for _, name := range theirs {
		mustExec(t, dst, "CREATE TABLE "+name+" (keep_me text); INSERT INTO "+name+" VALUES ('mine')")
	}
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	mustExec(t, conn, `CREATE MIRROR kn FROM src TO dst WITH TABLE MAPPING (`+testbed.PgbenchMapping+`)
		WITH (snapshot_num_rows_per_partition = 8000, snapshot_max_parallel_workers = 1)`)
	conn.Close(context.Background())
	status := func(c *pgx.Conn) (mirror, resync string, resyncing bool, done int) {
		_ = c.QueryRow(context.Background(), `SELECT m.status, coalesce(t.resync_status, ''), m.resyncing, t.partitions_done
			FROM mirrors m JOIN mirror_tables t ON t.mirror = m.name
			WHERE m.name = 'kn' AND t.source_table = 'public.pgbench_accounts'`).Scan(&mirror, &resync, &resyncing, &done)
		return
	}
	p.WaitFor("streaming", func(c *pgx.Conn) bool { m, _, _, _ := status(c); return m == "RUNNING" }, nil)
	for _, stmt := range []string{"RESYNC TABLE kn.pgbench_accounts WITH (strategy = 'swap')", "RESYNC MIRROR kn"} {
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
			return m == "RUNNING" && !resyncing && resync == "done"
		}, nil)
		for _, name := range theirs {
			var keep string
			if err := dst.QueryRow(context.Background(), "SELECT keep_me FROM "+name).Scan(&keep); err != nil || keep != "mine" {
				t.Fatalf("after %s: the user's %s has %q (%v)", stmt, name, keep, err)
			}
		}
	}
	for _, tbl := range testbed.PgbenchTables {
		waitEqual(t, src, dst, tbl.Name, tbl.Name, tbl.Key)
	}
	rows, err := dst.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := "pgbench_accounts,pgbench_accounts_resync,pgbench_branches,pgbench_branches_resync_1,pgbench_tellers,pgbench_tellers_resync"
	if got := strings.Join(tables, ","); got != want {
		t.Fatalf("destination tables %s, want %s", got, want)
	}
	var recorded int
	if err := dst.QueryRow(context.Background(), `SELECT count(*) FROM _sluice.owned_tables`).Scan(&recorded); err != nil || recorded != 0 {
		t.Fatalf("%d temporary tables still recorded (%v)", recorded, err)
	}
}
