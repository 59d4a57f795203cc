package cluster_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Early streams (executor/replication/early.go): a source transaction whose
// decoded changes outgrow the WAL sender's logical_decoding_work_mem (8 MB
// on a Sluice stream) is sent while still in progress and applied as it
// comes. These tests drive the real binary against real servers through
// the cases the stream has to survive: a rollback, a savepoint rolled back,
// transactions committed while one is open (folded), two open at once, a
// kill -9, and a column added inside one. Each proves the early path was
// taken by the source's pg_stat_replication_slots (stream_txns) or by the
// destination holding an open transaction while the source's is open, and
// ends with the destination equal to the source and the mirror RUNNING
// without an error.

// earlyBed is a sluice process mirroring pgbench's tables (scale 2: 200,000
// accounts, an UPDATE of all of them is about 50 MB decoded) from src to
// dst, caught up.
type earlyBed struct {
	p              *testbed.SluiceProcess
	srcURL, dstURL string
	src, dst       *pgx.Conn
	mirror         string
}

// startEarly starts the process and the mirror, and returns once the
// destination has the snapshot.
func startEarly(t *testing.T, mirror string) *earlyBed {
	t.Helper()
	e := &earlyBed{p: testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password),
		srcURL: peerCluster.NewDB(t), dstURL: peerCluster.NewDB(t), mirror: mirror}
	e.src, e.dst = connect(t, e.srcURL), connect(t, e.dstURL)
	pgbench(t, e.srcURL, "-i", "-s", "2", "-q")
	conn := connect(t, e.p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(e.srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(e.dstURL)+")")
	mustExec(t, conn, "CREATE MIRROR "+mirror+" FROM src TO dst WITH TABLE MAPPING ("+testbed.PgbenchMapping+
		") WITH (max_batch_size = 10000)")
	conn.Close(context.Background())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source slot statistics: %+v", e.stats(t))
		}
	})
	e.equal(t)
	return e
}

// session opens another connection to the source, for a transaction of
// its own.
func (e *earlyBed) session(t *testing.T) *pgx.Conn {
	t.Helper()
	return connect(t, e.srcURL)
}

// equal waits until every mirrored table of the destination equals the
// source's.
func (e *earlyBed) equal(t *testing.T) {
	t.Helper()
	for _, tbl := range testbed.PgbenchTables {
		waitEqual(t, e.src, e.dst, tbl.Name, tbl.Name, tbl.Key)
	}
}

// slotStats are the source's statistics of the mirror's slot.
type slotStats struct {
	streamTxns, streamCount, streamBytes, spillTxns int64
}

// stats reads pg_stat_replication_slots for the mirror's slot (the only
// slot of the source database). A WAL sender updates them in shared memory
// as it streams (Postgres 15), so they are current, if not to the message.
func (e *earlyBed) stats(t *testing.T) slotStats {
	t.Helper()
	return slotStatsOf(t, e.src)
}

// slotStatsOf reads pg_stat_replication_slots for the only slot of src's
// database.
func slotStatsOf(t *testing.T, src *pgx.Conn) slotStats {
	t.Helper()
	var s slotStats
	err := src.QueryRow(testCtx(t), `SELECT s.stream_txns, s.stream_count, s.stream_bytes, s.spill_txns
		FROM pg_stat_replication_slots s JOIN pg_replication_slots r USING (slot_name)
		WHERE r.database = current_database()`).Scan(&s.streamTxns, &s.streamCount, &s.streamBytes, &s.spillTxns)
	if err != nil {
		t.Fatalf("read the mirror's slot statistics: %v", err)
	}
	return s
}

// waitStreamed waits until the source has sent more than before.streamCount
// blocks of in-progress transactions (its stream_count grew), and returns
// the statistics then.
func (e *earlyBed) waitStreamed(t *testing.T, before slotStats, what string) slotStats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s := e.stats(t); s.streamCount > before.streamCount {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: the source streamed no block of an in-progress transaction (pg_stat_replication_slots %+v)", what, e.stats(t))
	return slotStats{}
}

// applying waits until the destination holds a transaction that has
// written (the mirror's, applying an open source transaction), then a
// little longer so that more of it is in.
func (e *earlyBed) applying(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if e.dstWriting(t) {
			time.Sleep(300 * time.Millisecond)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no destination transaction seen while the source's was open (stats %+v)", what, e.stats(t))
}

// dstWriting reports whether a transaction of the destination database
// (other than this test's) has written.
func (e *earlyBed) dstWriting(t *testing.T) bool {
	t.Helper()
	var n int
	if err := e.dst.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// openStreamed begins a transaction on conn that runs sql, a change large
// enough to be streamed, and waits until the source streamed it (its slot's
// statistics moved past before) and the destination applies it (what names
// it in failures).
func (e *earlyBed) openStreamed(t *testing.T, conn *pgx.Conn, before slotStats, sql, what string) {
	t.Helper()
	mustExec(t, conn, "BEGIN")
	mustExec(t, conn, sql)
	e.waitStreamed(t, before, what)
	e.applying(t, what)
}

// converged waits for the destination to equal the source and checks the
// mirror is healthy; with stayedEarly, also that the early stream was never
// abandoned (stayedEarly is the failure's message).
func (e *earlyBed) converged(t *testing.T, stayedEarly string) {
	t.Helper()
	e.equal(t)
	e.healthy(t)
	if stayedEarly != "" && e.logged(t, abandonedLog) {
		t.Fatal(stayedEarly)
	}
}

// healthy checks that the mirror is RUNNING with no error.
func (e *earlyBed) healthy(t *testing.T) {
	t.Helper()
	conn := connect(t, e.p.URL())
	defer conn.Close(context.Background())
	var status, msg string
	if err := conn.QueryRow(testCtx(t), "SELECT status, coalesce(error, '') FROM mirrors WHERE name = $1", e.mirror).
		Scan(&status, &msg); err != nil {
		t.Fatal(err)
	}
	if status != "RUNNING" || msg != "" {
		t.Fatalf("mirror %s is %s, error %q; last events:\n%s", e.mirror, status, msg, e.p.LastEvents())
	}
}

// logged reports whether the process's log has s.
func (e *earlyBed) logged(t *testing.T, s string) bool {
	t.Helper()
	b, err := os.ReadFile(e.p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), s)
}

// waitLogged waits until the process's log has s.
func (e *earlyBed) waitLogged(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if e.logged(t, s) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the sluice log never said %q", s)
}

// abandonedLog is what the flow logs when an early stream is abandoned
// (executor/replication/cdc.go).
const abandonedLog = "cannot be applied as one"

// TestEarlyRollback: a large transaction streamed and applied while open,
// then rolled back on the source: the destination transaction is rolled
// back, the mirror goes on with the small transactions after it, without
// abandoning the early stream.
func TestEarlyRollback(t *testing.T) {
	e := startEarly(t, "erb")
	before := e.stats(t)
	a := e.session(t)
	e.openStreamed(t, a, before, "UPDATE pgbench_accounts SET abalance = abalance + 1, filler = 'rolled back' || aid", "open UPDATE of all accounts")
	mustExec(t, a, "ROLLBACK")
	mustExec(t, e.src, "UPDATE pgbench_accounts SET abalance = -1 WHERE aid % 1000 = 0")
	mustExec(t, e.src, "INSERT INTO pgbench_tellers VALUES (1000, 1, 0, 'after')")
	e.converged(t, "a rollback of a transaction with nothing folded into it abandoned the early stream")
	if s := e.stats(t); s.streamTxns == 0 {
		t.Fatalf("no transaction streamed: %+v", s)
	}
}

// TestEarlySavepointRollback: a savepoint of a streamed transaction is
// rolled back after its changes were streamed: the early stream is
// abandoned, the stream starts again sending at commits, and the
// destination ends with the transaction as the source committed it. The
// next large transaction, within the minute, comes at its commit.
func TestEarlySavepointRollback(t *testing.T) {
	e := startEarly(t, "esp")
	before := e.stats(t)
	a := e.session(t)
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 2, filler = 'kept' || aid")
	first := e.waitStreamed(t, before, "first UPDATE")
	e.applying(t, "first UPDATE")
	mustExec(t, a, "SAVEPOINT s")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 1000, filler = 'undone' || aid WHERE aid <= 100000")
	e.waitStreamed(t, first, "UPDATE in the savepoint")
	mustExec(t, a, "ROLLBACK TO s")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = 7 WHERE aid % 500 = 0")
	mustExec(t, a, "COMMIT")
	e.converged(t, "")
	if !e.logged(t, "rolled back a savepoint") {
		t.Fatal("the savepoint's rollback did not take the abandoned path (no \"rolled back a savepoint\" in the log)")
	}
	// For a minute after, large transactions come at their commit.
	late := e.stats(t)
	mustExec(t, e.src, "UPDATE pgbench_accounts SET abalance = abalance - 1, filler = 'late' || aid")
	e.equal(t)
	if s := e.stats(t); s.streamTxns != late.streamTxns {
		t.Fatalf("a large transaction was streamed in progress right after an early stream was abandoned: %+v, before %+v", s, late)
	}
	e.healthy(t)
}

// foldedChanges are small transactions of session b on rows the open
// transaction does not touch, and on the other mirrored tables.
func foldedChanges(t *testing.T, b *pgx.Conn) {
	t.Helper()
	for _, sql := range []string{
		"INSERT INTO pgbench_accounts VALUES (300001, 1, 5, 'b insert'), (300002, 2, 6, 'b insert')",
		"UPDATE pgbench_branches SET bbalance = bbalance + 11 WHERE bid = 1",
		"INSERT INTO pgbench_tellers VALUES (1001, 2, 3, 'b teller')",
		"UPDATE pgbench_tellers SET tbalance = -5 WHERE tid = 3",
		"DELETE FROM pgbench_tellers WHERE tid = 4",
		"UPDATE pgbench_accounts SET filler = 'b update' WHERE aid = 300001",
		"DELETE FROM pgbench_accounts WHERE aid = 300002",
	} {
		mustExec(t, b, sql)
	}
}

// TestEarlyFolded: small transactions committed by another session while
// a large one is open are folded into it, and arrive with it.
func TestEarlyFolded(t *testing.T) {
	e := startEarly(t, "efo")
	before := e.stats(t)
	a, b := e.session(t), e.session(t)
	e.openStreamed(t, a, before, "UPDATE pgbench_accounts SET abalance = abalance + 3, filler = 'a' || aid WHERE aid <= 200000", "A's UPDATE")
	foldedChanges(t, b)
	// Folded: the destination has B's changes only with A's commit.
	time.Sleep(time.Second)
	if n := testbed.Count(t, e.dst, "pgbench_tellers"); n != 20 {
		t.Fatalf("the destination has %d tellers while A is open: B's transactions were not folded into A", n)
	}
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance * 2 WHERE aid % 3 = 0 AND aid <= 200000")
	mustExec(t, a, "UPDATE pgbench_branches SET filler = 'a' WHERE bid = 2")
	// Rows B's transactions committed, changed by A after them.
	mustExec(t, a, "UPDATE pgbench_tellers SET filler = 'a after b' WHERE tid IN (3, 1001)")
	mustExec(t, a, "DELETE FROM pgbench_accounts WHERE aid = 300001")
	mustExec(t, a, "COMMIT")
	e.converged(t, "committing an open transaction with others folded into it abandoned the early stream")
}

// TestEarlyFoldedRollback: as TestEarlyFolded, but the open transaction
// rolls back: the early stream is abandoned, and the other session's
// changes arrive, the open one's do not.
func TestEarlyFoldedRollback(t *testing.T) {
	e := startEarly(t, "efr")
	before := e.stats(t)
	a, b := e.session(t), e.session(t)
	e.openStreamed(t, a, before, "UPDATE pgbench_accounts SET abalance = abalance + 3, filler = 'a' || aid WHERE aid <= 200000", "A's UPDATE")
	foldedChanges(t, b)
	mustExec(t, a, "UPDATE pgbench_branches SET filler = 'a' WHERE bid = 2")
	mustExec(t, a, "ROLLBACK")
	e.equal(t)
	e.waitLogged(t, "rolled back after others were folded into it")
	e.healthy(t)
}

// TestEarlyTwoOpen: two large transactions in progress at once, both
// exceeding the WAL sender's memory, interleaved, both committed: the
// second one's streaming abandons the early stream, and both arrive.
func TestEarlyTwoOpen(t *testing.T) {
	e := startEarly(t, "eto")
	before := e.stats(t)
	a, b := e.session(t), e.session(t)
	mustExec(t, a, "BEGIN")
	mustExec(t, b, "BEGIN")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 1, filler = 'a' || aid WHERE aid % 2 = 0")
	e.waitStreamed(t, before, "A's UPDATE")
	mustExec(t, b, "UPDATE pgbench_accounts SET abalance = abalance + 2, filler = 'b' || aid WHERE aid % 2 = 1")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 10 WHERE aid % 4 = 0")
	mustExec(t, b, "UPDATE pgbench_accounts SET abalance = abalance + 20 WHERE aid % 4 = 1")
	e.waitLogged(t, "began streaming while")
	mustExec(t, b, "COMMIT")
	mustExec(t, a, "COMMIT")
	e.converged(t, "")
}

// TestEarlyKillWithFolded: kill -9 while a large source transaction is
// open, streamed and applied, with small commits folded into it; after the
// restart the source sends it again, it commits, and the destination
// equals the source.
func TestEarlyKillWithFolded(t *testing.T) {
	e := startEarly(t, "ekf")
	before := e.stats(t)
	a, b := e.session(t), e.session(t)
	e.openStreamed(t, a, before, "UPDATE pgbench_accounts SET abalance = abalance + 4, filler = 'a' || aid WHERE aid <= 200000", "A's UPDATE")
	foldedChanges(t, b)
	time.Sleep(300 * time.Millisecond) // the folded changes received
	e.p.Kill()
	if e.dstWriting(t) {
		// The killed process's destination transaction goes when its
		// connection does.
		time.Sleep(time.Second)
	}
	e.p.Start()
	mustExec(t, b, "UPDATE pgbench_tellers SET filler = 'after restart' WHERE tid = 5")
	mustExec(t, a, "UPDATE pgbench_accounts SET filler = 'a2' WHERE aid % 100 = 0 AND aid <= 200000")
	mustExec(t, a, "COMMIT")
	e.converged(t, "")
}

// TestEarlyKillAfterEarlierCommit: as TestEarlyKillWithFolded, but a
// small transaction commits (and is applied) after the large one began and
// before it is streamed: after the kill the stream starts at that commit,
// past the large transaction's first changes, and the source sends the
// large one whole again, the small one not again.
func TestEarlyKillAfterEarlierCommit(t *testing.T) {
	e := startEarly(t, "eke")
	before := e.stats(t)
	a, b := e.session(t), e.session(t)
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "UPDATE pgbench_accounts SET filler = 'a first' WHERE aid <= 1000")
	mustExec(t, b, "INSERT INTO pgbench_tellers VALUES (3000, 1, 0, 'before A streams')")
	mustExec(t, b, "UPDATE pgbench_branches SET bbalance = 99 WHERE bid = 2")
	waitEqual(t, e.src, e.dst, "pgbench_tellers", "pgbench_tellers", "tid")
	waitEqual(t, e.src, e.dst, "pgbench_branches", "pgbench_branches", "bid")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 4, filler = 'a' || aid WHERE aid <= 200000")
	e.waitStreamed(t, before, "A's UPDATE")
	e.applying(t, "A's UPDATE")
	foldedChanges(t, b)
	time.Sleep(300 * time.Millisecond)
	e.p.Kill()
	e.p.Start()
	mustExec(t, a, "UPDATE pgbench_accounts SET filler = 'a2' WHERE aid % 100 = 0 AND aid <= 200000")
	mustExec(t, a, "COMMIT")
	e.converged(t, "")
}

// TestEarlyAddColumn: a column added inside a large streamed transaction,
// then rows changed with it, more rows changed while it is still open,
// then committed: the destination gains the column and equals the source.
func TestEarlyAddColumn(t *testing.T) {
	e := startEarly(t, "eac")
	before := e.stats(t)
	a := e.session(t)
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 5, filler = 'a' || aid")
	first := e.waitStreamed(t, before, "UPDATE before the ALTER")
	e.applying(t, "UPDATE before the ALTER")
	mustExec(t, a, "ALTER TABLE pgbench_accounts ADD COLUMN note text DEFAULT 'x'")
	mustExec(t, a, "UPDATE pgbench_accounts SET note = 'n' || aid WHERE aid % 10 = 0")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 2 = 0")
	e.waitStreamed(t, first, "UPDATE after the ALTER")
	mustExec(t, a, "COMMIT")
	e.converged(t, "")
	var note string
	if err := e.dst.QueryRow(testCtx(t), "SELECT note FROM pgbench_accounts WHERE aid = 10").Scan(&note); err != nil || note != "n10" {
		t.Fatalf("destination's note of account 10: %q (%v)", note, err)
	}
}

// TestEarlyAddColumnHeldOpen: as TestEarlyAddColumn, but the transaction
// stays open a while after rows changed with the new column were streamed.
// The flow restarts its stream once at the new column (its destination
// transaction holds rows of the old columns), and the restart waits on the
// source for the ALTER's lock (reading the table's size) until the
// transaction commits: the mirror stalls, but does not decode the
// transaction again and again.
func TestEarlyAddColumnHeldOpen(t *testing.T) {
	e := startEarly(t, "eah")
	before := e.stats(t)
	a := e.session(t)
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 5, filler = 'a' || aid")
	first := e.waitStreamed(t, before, "UPDATE before the ALTER")
	e.applying(t, "UPDATE before the ALTER")
	mustExec(t, a, "ALTER TABLE pgbench_accounts ADD COLUMN note text DEFAULT 'x'")
	mustExec(t, a, "UPDATE pgbench_accounts SET note = 'n' || aid WHERE aid % 2 = 0")
	e.waitStreamed(t, first, "UPDATE after the ALTER")
	e.waitLogged(t, addedColumnsLog)
	time.Sleep(3 * time.Second)
	b, err := os.ReadFile(e.p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), addedColumnsLog); n > 2 {
		t.Fatalf("the stream restarted %d times at the new column while the transaction was open", n)
	}
	mustExec(t, a, "COMMIT")
	e.converged(t, "")
}

// addedColumnsLog is what the batcher logs when columns come in the middle
// of a transaction whose first rows it forgot (executor/replication).
const addedColumnsLog = "source added columns in the middle of a large transaction"

// TestEarlyUnstreamedSavepointRollback: a savepoint rolled back in a
// streamed transaction, its few changes never streamed: the destination
// ends with the transaction as the source committed it.
func TestEarlyUnstreamedSavepointRollback(t *testing.T) {
	e := startEarly(t, "eus")
	before := e.stats(t)
	a := e.session(t)
	e.openStreamed(t, a, before, "UPDATE pgbench_accounts SET abalance = abalance + 2, filler = 'kept' || aid", "UPDATE")
	mustExec(t, a, "SAVEPOINT s")
	mustExec(t, a, "INSERT INTO pgbench_tellers VALUES (2000, 1, 0, 'undone')")
	mustExec(t, a, "UPDATE pgbench_accounts SET filler = 'undone' WHERE aid = 5")
	mustExec(t, a, "ROLLBACK TO s")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = 7 WHERE aid % 500 = 0")
	mustExec(t, a, "COMMIT")
	e.converged(t, "")
	// Whether the source sent a Stream Abort of the savepoint (abandoning
	// the early stream) depends on whether its changes went out in a block:
	// only the destination's rows are checked.
	t.Logf("early stream abandoned: %v", e.logged(t, abandonedLog))
}

// TestEarlyTruncate: a mirrored table truncated and refilled inside a
// large streamed transaction.
func TestEarlyTruncate(t *testing.T) {
	e := startEarly(t, "etr")
	before := e.stats(t)
	a := e.session(t)
	e.openStreamed(t, a, before, "UPDATE pgbench_accounts SET abalance = abalance + 2, filler = 'a' || aid", "UPDATE")
	mustExec(t, a, "TRUNCATE pgbench_tellers")
	mustExec(t, a, "INSERT INTO pgbench_tellers SELECT g, 1, g, 'refilled' FROM generate_series(1, 50) g")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = 0 WHERE aid % 3 = 0")
	mustExec(t, a, "COMMIT")
	e.converged(t, "a TRUNCATE in an open transaction abandoned the early stream")
}

// TestEarlyIntoClickHouse: a destination that versions rows by the commit
// position (ClickHouse) takes a large transaction while it is open into a
// stage table, the version given at its commit (connectors.LateVersions):
// the source streams it (stream_txns) and the stage holds its rows before
// the commit; a small transaction committed meanwhile is folded into it.
// After the commit the FINAL view equals the source and no stage is left.
// A second one rolled back leaves the table as it was and no stage. A
// large DELETE (no REPLICA IDENTITY FULL: its rows' other values are read
// from the table) cannot be staged: the early stream is abandoned and the
// transaction comes at its commit, and the table converges all the same.
func TestEarlyIntoClickHouse(t *testing.T) {
	ch := testbed.ClickHouseFor(t)
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL := peerCluster.NewDB(t)
	src := connect(t, srcURL)
	pgbench(t, srcURL, "-i", "-s", "2", "-q")
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	mustExec(t, conn, `CREATE MIRROR ech FROM src TO ch WITH TABLE MAPPING (pgbench_accounts:pgbench_accounts)`)
	conn.Close(context.Background())
	same := func() {
		t.Helper()
		testbed.WaitSame(t, src, `SELECT aid || '|' || abalance || '|' || rpad(filler, 84) FROM pgbench_accounts ORDER BY aid`, ch,
			`SELECT concat(toString(aid), '|', toString(abalance), '|', filler) FROM pgbench_accounts FINAL
			 WHERE _sluice_is_deleted = 0 ORDER BY aid`)
	}
	staged := func() uint64 {
		t.Helper()
		rows := testbed.CHRows(t, ch, `SELECT toString(count()) FROM system.tables
			WHERE database = currentDatabase() AND name LIKE 'pgbench_accounts_sluice_stage%'`)
		n, _ := strconv.ParseUint(rows[0], 10, 64)
		return n
	}
	waitStage := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for staged() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no stage table while the source transaction is open (slot %+v)", what, slotStatsOf(t, src))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	logged := func(s string) bool {
		t.Helper()
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), s)
	}
	same()
	a, b := connect(t, srcURL), connect(t, srcURL)
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 1, filler = 'a' || aid")
	waitStage("the first UPDATE")
	mustExec(t, b, "INSERT INTO pgbench_accounts VALUES (900001, 1, 7, 'committed while A is open')")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 2 = 0")
	mustExec(t, a, "COMMIT")
	same()
	if s := slotStatsOf(t, src); s.streamTxns == 0 {
		t.Fatalf("the source streamed no transaction in progress: %+v", s)
	}
	if n := staged(); n != 0 {
		t.Fatalf("%d stage tables left after the commit", n)
	}
	if logged(abandonedLog) {
		t.Fatal("the early stream into ClickHouse was abandoned")
	}

	mustExec(t, a, "BEGIN")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = -1, filler = 'rolled back'")
	waitStage("the UPDATE rolled back")
	mustExec(t, a, "ROLLBACK")
	mustExec(t, b, "UPDATE pgbench_accounts SET abalance = 5 WHERE aid = 900001")
	same()
	deadline := time.Now().Add(10 * time.Second)
	for staged() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stage of a transaction rolled back on the source is left")
		}
		time.Sleep(50 * time.Millisecond)
	}

	mustExec(t, a, "BEGIN")
	mustExec(t, a, "DELETE FROM pgbench_accounts WHERE aid % 3 = 0")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 3, filler = 'b' || aid WHERE aid % 3 = 1")
	mustExec(t, a, "COMMIT")
	same()
	if !logged(abandonedLog) {
		t.Fatal("a large DELETE was staged: its rows' values are not in its changes")
	}
	if n := staged(); n != 0 {
		t.Fatalf("%d stage tables left after an abandoned early stream", n)
	}
}

// TestEarlyUnmirroredOpen: a large transaction that changes no mirrored
// table (pgbench_history is not in the mapping) streams while small
// transactions commit on mirrored tables: those arrive while it is open,
// as they would if it were sent at its commit. When it then changes a
// mirrored table, it is handed over open, the commits after that are
// folded into it, and all arrive at its commit. A second one rolls back
// without abandoning the early stream.
func TestEarlyUnmirroredOpen(t *testing.T) {
	e := startEarly(t, "eun")
	before := e.stats(t)
	a, b := e.session(t), e.session(t)
	tellers := func(want int64, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for testbed.Count(t, e.dst, "pgbench_tellers") != want {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	unmirrored := `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, filler)
		SELECT 1, 1, g, g, now(), 'unmirrored' FROM generate_series(1, 300000) g`
	mustExec(t, a, "BEGIN")
	mustExec(t, a, unmirrored)
	streamed := e.waitStreamed(t, before, "the unmirrored INSERT")
	mustExec(t, b, "INSERT INTO pgbench_tellers VALUES (4000, 1, 0, 'while open')")
	tellers(21, "a small commit on a mirrored table did not arrive in 10 s while a large transaction that "+
		"changes no mirrored table was open: it was folded into that transaction and waits for its end")
	mustExec(t, a, "UPDATE pgbench_accounts SET abalance = abalance + 1, filler = 'a' || aid")
	e.waitStreamed(t, streamed, "A's UPDATE of the accounts")
	e.applying(t, "A's UPDATE of the accounts")
	mustExec(t, b, "INSERT INTO pgbench_tellers VALUES (4001, 1, 0, 'folded')")
	time.Sleep(time.Second)
	if n := testbed.Count(t, e.dst, "pgbench_tellers"); n != 21 {
		t.Fatalf("the destination has %d tellers while A, now changing accounts, is open: not folded", n)
	}
	mustExec(t, a, "COMMIT")
	e.equal(t)

	before = e.stats(t)
	mustExec(t, a, "BEGIN")
	mustExec(t, a, unmirrored)
	e.waitStreamed(t, before, "the second unmirrored INSERT")
	mustExec(t, b, "INSERT INTO pgbench_tellers VALUES (4002, 1, 0, 'while open')")
	tellers(23, "a small commit did not arrive while the second unmirrored transaction was open")
	mustExec(t, a, "ROLLBACK")
	mustExec(t, b, "UPDATE pgbench_tellers SET filler = 'after rollback' WHERE tid = 4000")
	e.converged(t, "the early stream was abandoned")
}
