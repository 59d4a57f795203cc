package mysqlmirror_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// churnDDL is a table the writer changes.
const churnDDL = `CREATE TABLE %s (id int PRIMARY KEY, v int NOT NULL, note varchar(100), at datetime(6))`

// churnFill fills a churn table with n rows.
const churnFill = `INSERT INTO %s SELECT seq, 0, CONCAT('row ', seq), '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_%d`

var churnCols = []col{text("id"), text("v"), text("note"),
	{"at", "DATE_FORMAT(%s, '%%Y-%%m-%%d %%H:%%i:%%s.%%f')", "to_char(%s, 'YYYY-MM-DD HH24:MI:SS.US')"}}

// writer changes churn tables of a MariaDB database until stopped: each
// round inserts a row, updates another (of the n filled ones and of those
// inserted), deletes one now and then, and makes a transaction of several
// statements now and then.
type writer struct {
	rounds atomic.Int64
	stop   chan struct{}
	done   chan error
}

func startWriter(t *testing.T, db string, n int, tables ...string) *writer {
	t.Helper()
	c := myConn(t, db)
	w := &writer{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		w.done <- func() error {
			for i := 1; ; i++ {
				select {
				case <-w.stop:
					return nil
				default:
				}
				for _, tbl := range tables {
					id := 1_000_000 + i
					qs := []string{
						fmt.Sprintf("INSERT INTO %s VALUES (%d, %d, 'w', NOW(6))", tbl, id, i),
						fmt.Sprintf("UPDATE %s SET v = v + 1, note = 'u%d' WHERE id IN (%d, %d)", tbl, i, i*7919%n+1, 1_000_000+i/2),
					}
					if i%10 == 0 {
						qs = append(qs, fmt.Sprintf("DELETE FROM %s WHERE id = %d", tbl, i*104729%n+1))
					}
					if i%20 == 0 {
						qs = append(qs, "BEGIN",
							fmt.Sprintf("UPDATE %s SET v = v + 100 WHERE id BETWEEN %d AND %d", tbl, i%n, i%n+30),
							fmt.Sprintf("UPDATE %s SET id = id + 2000000 WHERE id = %d", tbl, 1_000_000+i-5),
							"COMMIT")
					}
					for _, q := range qs {
						if _, err := c.Execute(q); err != nil {
							return fmt.Errorf("%s: %w", q, err)
						}
					}
				}
				w.rounds.Add(1)
				time.Sleep(3 * time.Millisecond)
			}
		}()
	}()
	return w
}

// finish stops the writer and fails the test if a statement failed.
func (w *writer) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// waitRounds waits until the writer has made n more rounds.
func (w *writer) waitRounds(t *testing.T, n int64) {
	t.Helper()
	want := w.rounds.Load() + n
	deadline := time.Now().Add(time.Minute)
	for w.rounds.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("writer stuck at %d rounds", w.rounds.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestResyncWhileWriting resyncs a MariaDB mirror into Postgres while a
// writer keeps changing both tables: RESYNC TABLE with each strategy,
// RESYNC MIRROR, then PAUSE and RESUME (changes made while paused arrive).
// After each step and a final catch-up the destination equals the source
// (every update counted in v: a lost or replayed change would show). The
// status tables read sensibly throughout; DROP MIRROR removes the mirror.
func TestResyncWhileWriting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	my := myConn(t, f.db)
	const n = 20000
	myExec(t, my, fmt.Sprintf(churnDDL, "t"), fmt.Sprintf(churnDDL, "u"), fmt.Sprintf(churnFill, "t", n), fmt.Sprintf(churnFill, "u", n))
	mustExec(t, f.conn, fmt.Sprintf(`CREATE MIRROR m FROM my TO dst WITH TABLE MAPPING (%[1]s.t:t, %[1]s.u:u)
		WITH (snapshot_num_rows_per_partition = 1000, max_batch_size = 500)`, f.db))
	waitStatus(t, f.conn, "m", "RUNNING")
	w := startWriter(t, f.db, n, "t", "u")
	stopped := false
	defer func() {
		if !stopped {
			close(w.stop)
			<-w.done
		}
	}()
	w.waitRounds(t, 20)
	statusTables(t, f.conn, "m", f.db)

	mustExec(t, f.conn, fmt.Sprintf("RESYNC TABLE m.%s.t WITH (strategy = 'swap')", f.db))
	waitResync(t, f.conn, "m", f.db+".t", "done")
	w.waitRounds(t, 20)
	// A table named without its database is in the peer's database, as
	// in the table mapping.
	mustExec(t, f.conn, "RESYNC TABLE m.u WITH (strategy = 'truncate')")
	waitResync(t, f.conn, "m", f.db+".u", "done")
	w.waitRounds(t, 20)
	_, err := f.conn.Exec(testCtx(t), "RESYNC TABLE m.nosuch")
	if pe := wantError(t, err, "42P01"); !strings.Contains(pe.Message, f.db+".nosuch") {
		t.Errorf("RESYNC TABLE m.nosuch: %q does not name %s.nosuch", pe.Message, f.db)
	}
	mustExec(t, f.conn, "PAUSE MIRROR m TABLE t")
	waitTableStatus(t, f.conn, "m", f.db+".t", "paused")
	w.waitRounds(t, 10)
	mustExec(t, f.conn, "RESUME MIRROR m TABLE t")
	waitTableStatus(t, f.conn, "m", f.db+".t", "running")
	w.waitRounds(t, 10)

	mustExec(t, f.conn, "RESYNC MIRROR m")
	deadline := time.Now().Add(90 * time.Second)
	for {
		var status string
		var resyncing bool
		if err := f.conn.QueryRow(testCtx(t), "SELECT status, resyncing FROM mirrors WHERE name = 'm'").Scan(&status, &resyncing); err != nil {
			t.Fatal(err)
		}
		if status == "RUNNING" && !resyncing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("full resync: status %s, resyncing %v\n%s", status, resyncing, mirrorState(f.conn))
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.waitRounds(t, 20)

	mustExec(t, f.conn, "PAUSE MIRROR m")
	waitStatus(t, f.conn, "m", "PAUSED")
	var before int
	if err := f.dst.QueryRow(testCtx(t), "SELECT count(*) FROM t WHERE id > 1000000").Scan(&before); err != nil {
		t.Fatal(err)
	}
	w.waitRounds(t, 30)
	var during int
	if err := f.dst.QueryRow(testCtx(t), "SELECT count(*) FROM t WHERE id > 1000000").Scan(&during); err != nil {
		t.Fatal(err)
	}
	if during != before {
		t.Errorf("a paused mirror applied changes: %d rows written by the writer, then %d", before, during)
	}
	statusTables(t, f.conn, "m", f.db)
	mustExec(t, f.conn, "RESUME MIRROR m")
	waitStatus(t, f.conn, "m", "RUNNING")
	w.waitRounds(t, 20)
	stopped = true
	w.finish(t)
	waitSamePG(t, f.conn, f.dst, my, "t", "t", "id", churnCols)
	waitSamePG(t, f.conn, f.dst, my, "u", "u", "id", churnCols)
	statusTables(t, f.conn, "m", f.db)

	mustExec(t, f.conn, "DROP MIRROR m")
	var left int
	if err := f.conn.QueryRow(testCtx(t), "SELECT count(*) FROM mirrors WHERE name = 'm'").Scan(&left); err != nil || left != 0 {
		t.Fatalf("after DROP MIRROR: %d mirrors named m (%v)", left, err)
	}
	var dropped int
	if err := f.conn.QueryRow(testCtx(t), "SELECT count(*) FROM mirror_tables WHERE mirror = 'm'").Scan(&dropped); err != nil || dropped != 0 {
		t.Fatalf("after DROP MIRROR: %d mirror_tables rows (%v)", dropped, err)
	}
	// The mirror's name can be used again.
	mustExec(t, f.conn, fmt.Sprintf("CREATE MIRROR m FROM my TO dst WITH TABLE MAPPING (%s.t:t2)", f.db))
	waitStatus(t, f.conn, "m", "RUNNING")
	waitSamePG(t, f.conn, f.dst, my, "t", "t2", "id", churnCols)
	mustExec(t, f.conn, "DROP MIRROR m")
}

// statusTables reads every column of the status views for a MySQL mirror
// (they must not fail) and checks what they must say: the mirror's peers,
// its tables, no error, a sync time and rows once streaming.
func statusTables(t *testing.T, conn *pgx.Conn, mirror, db string) {
	t.Helper()
	for _, q := range []string{
		"SELECT m::text FROM mirrors m WHERE name = $1",
		"SELECT x::text FROM mirror_tables x WHERE mirror = $1 ORDER BY source_table",
		"SELECT e::text FROM mirror_events e WHERE mirror = $1 ORDER BY at",
	} {
		rs, err := conn.Query(testCtx(t), q, mirror)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		t.Logf("%s:\n  %s", q, strings.Join(lines, "\n  "))
	}
	// Once streaming, a batch is recorded within moments.
	var src, dst, status string
	var errText *string
	var rowsSynced int64
	var syncedAt *time.Time
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := conn.QueryRow(testCtx(t), `SELECT source_peer, destination_peer, status, error, rows_synced, last_synced_at
			FROM mirrors WHERE name = $1`, mirror).Scan(&src, &dst, &status, &errText, &rowsSynced, &syncedAt); err != nil {
			t.Fatal(err)
		}
		if status != "RUNNING" || rowsSynced > 0 && syncedAt != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if src != "my" || dst != "dst" || errText != nil || (status == "RUNNING" && (rowsSynced == 0 || syncedAt == nil)) {
		t.Errorf("mirrors row: %s -> %s, %s, error %v, rows_synced %d, last_synced_at %v", src, dst, status, errText, rowsSynced, syncedAt)
	}
	var tables string
	if err := conn.QueryRow(testCtx(t), `SELECT string_agg(source_table || '>' || destination_table || ':' || status, ',' ORDER BY source_table)
		FROM mirror_tables WHERE mirror = $1`, mirror).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tables, db+".t>") {
		t.Errorf("mirror_tables: %s", tables)
	}
}

// waitTableStatus waits until table of mirror shows status want in
// mirror_tables.
func waitTableStatus(t *testing.T, conn *pgx.Conn, mirror, table, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var status string
		err := conn.QueryRow(testCtx(t), "SELECT status FROM mirror_tables WHERE mirror = $1 AND source_table = $2",
			mirror, table).Scan(&status)
		if err == nil && status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("table %s of mirror %s: status %q (%v), want %q\n%s", table, mirror, status, err, want, mirrorState(conn))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
