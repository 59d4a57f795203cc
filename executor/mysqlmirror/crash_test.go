package mysqlmirror_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// The kill tests run the real sluice binary and kill it with SIGKILL, as
// executor/crash_test.go does for Postgres sources.

// process is a sluice server running as a child process.
type process = testbed.SluiceProcess

// startProcess starts sluice as a child process on a catalog of its own.
func startProcess(t *testing.T) *process {
	t.Helper()
	return testbed.StartSluiceProcess(t, pg.NewDB(t), testPassword)
}

// waitFor polls cond on a fresh connection to the process until it holds.
func waitFor(t *testing.T, p *process, what string, cond func(conn *pgx.Conn) bool) {
	t.Helper()
	p.WaitFor(what, cond, nil)
}

// killFixture is a sluice process with a MYSQL peer on a fresh MariaDB
// database, a POSTGRES destination peer, and a churn table t of n rows.
func killFixture(t *testing.T, n int) (p *process, db string, dst *pgx.Conn) {
	t.Helper()
	p = startProcess(t)
	db = newMariaDB(t)
	dstURL := pg.NewDB(t)
	dst = connect(t, dstURL)
	myExec(t, myConn(t, db), fmt.Sprintf(churnDDL, "t"), fmt.Sprintf(churnFill, "t", n))
	conn := connect(t, p.URL())
	mustExec(t, conn, mysqlPeer("my", db))
	mustExec(t, conn, pgPeer("dst", dstURL))
	conn.Close(context.Background())
	return p, db, dst
}

// running reports whether mirror is RUNNING.
func running(mirror string) func(c *pgx.Conn) bool {
	return func(c *pgx.Conn) bool {
		var status string
		err := c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = $1`, mirror).Scan(&status)
		return err == nil && status == "RUNNING"
	}
}

// TestKillDuringInitialLoad kills sluice (SIGKILL) while it loads a
// MariaDB table into Postgres in partitions, some done, under a writer:
// restarted, it finishes the load and streams; the destination equals the
// source, nothing lost or duplicated.
func TestKillDuringInitialLoad(t *testing.T) {
	t.Parallel()
	const n = 150_000
	p, db, dst := killFixture(t, n)
	w := startWriter(t, db, n, "t")
	conn := connect(t, p.URL())
	mustExec(t, conn, fmt.Sprintf(`CREATE MIRROR kl FROM my TO dst WITH TABLE MAPPING (%s.t:t)
		WITH (snapshot_num_rows_per_partition = 1000, snapshot_max_parallel_workers = 1, max_batch_size = 500)`, db))
	conn.Close(context.Background())
	var done, total int
	waitFor(t, p, "a partly done load", func(c *pgx.Conn) bool {
		err := c.QueryRow(context.Background(), `SELECT partitions_done, partitions_total FROM mirror_tables
			WHERE mirror = 'kl' AND source_table = $1`, db+".t").Scan(&done, &total)
		return err == nil && done >= 2
	})
	p.Kill()
	if done >= total {
		t.Logf("the load was done (%d of %d partitions) before the kill", done, total)
	}
	p.Start()
	waitFor(t, p, "kl running", running("kl"))
	w.waitRounds(t, 30)
	w.finish(t)
	c := connect(t, p.URL())
	waitSamePG(t, c, dst, myConn(t, db), "t", "t", "id", churnCols)
	var resumed int
	// (More than one when the resumed load's step failed and was retried.)
	if err := c.QueryRow(testCtx(t), `SELECT count(*) FROM mirror_events WHERE mirror = 'kl' AND kind = 'snapshot' AND message LIKE '%resumed%'`).Scan(&resumed); err != nil || resumed < 1 {
		t.Errorf("%d events saying the load resumed (%v), want one (killed after %d of %d partitions)", resumed, err, done, total)
	}
}

// TestKillDuringStreaming kills sluice (SIGKILL) twice while it streams a
// MariaDB table into Postgres under a writer, with the binlog rotated
// (FLUSH BINARY LOGS) between the kills, through two mirrors: one resuming
// by GTID (the default on MariaDB), one by file and offset. Restarted from
// the applied position each time, each converges with nothing lost or
// applied twice.
func TestKillDuringStreaming(t *testing.T) {
	t.Parallel()
	const n = 20_000
	p, db, dst := killFixture(t, n)
	conn := connect(t, p.URL())
	mustExec(t, conn, strings.Replace(mysqlPeer("myfp", db), "WITH (", "WITH (replication_mechanism = 'filepos', ", 1))
	mustExec(t, conn, fmt.Sprintf(`CREATE MIRROR ks FROM my TO dst WITH TABLE MAPPING (%s.t:t) WITH (max_batch_size = 200)`, db))
	mustExec(t, conn, fmt.Sprintf(`CREATE MIRROR ksfp FROM myfp TO dst WITH TABLE MAPPING (%s.t:tfp) WITH (max_batch_size = 200)`, db))
	conn.Close(context.Background())
	waitFor(t, p, "ks running", running("ks"))
	waitFor(t, p, "ksfp running", running("ksfp"))
	w := startWriter(t, db, n, "t")
	for i := 0; i < 2; i++ {
		w.waitRounds(t, 50)
		maria.Exec(t, "", "FLUSH BINARY LOGS")
		w.waitRounds(t, 50)
		p.Kill()
		w.waitRounds(t, 30)
		maria.Exec(t, "", "FLUSH BINARY LOGS")
		w.waitRounds(t, 10)
		p.Start()
	}
	waitFor(t, p, "ks running", running("ks"))
	waitFor(t, p, "ksfp running", running("ksfp"))
	w.waitRounds(t, 50)
	w.finish(t)
	c := connect(t, p.URL())
	waitSamePG(t, c, dst, myConn(t, db), "t", "t", "id", churnCols)
	waitSamePG(t, c, dst, myConn(t, db), "t", "tfp", "id", churnCols)
}

// TestKillDuringLargeTransaction kills sluice (SIGKILL) while it writes
// one large MariaDB transaction into ClickHouse, which it writes in blocks
// before the transaction's end is recorded: restarted, the stream resumes
// before the transaction and sends it again with the same versions, and
// the FINAL view ends equal to the source.
func TestKillDuringLargeTransaction(t *testing.T) {
	t.Parallel()
	p := startProcess(t)
	db := newMariaDB(t)
	chDB := "ch_" + db
	chc, err := ch.Open("default")
	if err != nil {
		t.Fatal(err)
	}
	defer chc.Close()
	if err := chc.Exec(testCtx(t), "CREATE DATABASE "+chDB); err != nil {
		t.Fatal(err)
	}
	my := myConn(t, db)
	myExec(t, my, fmt.Sprintf(churnDDL, "t"), fmt.Sprintf(churnFill, "t", 100_000))
	conn := connect(t, p.URL())
	mustExec(t, conn, mysqlPeer("my", db))
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = '%s')", ch.Port(), chDB))
	mustExec(t, conn, fmt.Sprintf(`CREATE MIRROR kbig FROM my TO ch WITH TABLE MAPPING (%s.t:t) WITH (max_batch_size = 10000)`, db))
	conn.Close(context.Background())
	waitFor(t, p, "kbig running", running("kbig"))
	cols := []col{text("id"), text("v"), text("note"), {"at", "DATE_FORMAT(%s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f')", "%s"}}
	same := func() {
		t.Helper()
		waitSame(t, nil, my, "t", "id", cols, func() rows { return chRows(t, chDB, "t", "id", cols) })
	}
	same()
	myExec(t, my, "BEGIN",
		"UPDATE t SET v = v + 7, note = 'big'",
		"INSERT INTO t SELECT seq, 1, 'new', NOW(6) FROM seq_200001_to_300000",
		"UPDATE t SET id = id + 1000000 WHERE id % 10 = 0 AND id <= 100000",
		"DELETE FROM t WHERE id % 7 = 0",
		"COMMIT")
	deadline := time.Now().Add(time.Minute)
	for {
		var written uint64
		if err := chc.QueryRow(testCtx(t), "SELECT count() FROM "+chDB+".t WHERE note = 'big'").Scan(&written); err != nil {
			t.Fatal(err)
		}
		if written > 0 {
			t.Logf("killed with %d rows of the transaction written", written)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no row of the transaction written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Kill()
	p.Start()
	same()
}
