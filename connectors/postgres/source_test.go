package postgres_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
	"github.com/sluicedb/sluice/internal/testbed"
)

// sourceEnv is a source database, a connection to it for the test's own
// statements, and a Source open on it.
type sourceEnv struct {
	url  string
	db   string
	peer *postgres.PeerConfig
	conn *pgx.Conn
	src  connectors.Source
	spec connectors.StreamSpec
}

// sourceApp is the application name of the tests' Sources.
const sourceApp = "sluice-source-test"

// newSourceEnv makes a database on the source cluster, runs setup on it and
// opens a Source, closed when the test ends. The spec's slot and
// publication are named after the database (slots are cluster-wide).
func newSourceEnv(t *testing.T, setup string) *sourceEnv {
	t.Helper()
	return newSourceEnvOn(t, srcCluster, setup)
}

// newSourceEnvOn is newSourceEnv on cluster c.
func newSourceEnvOn(t *testing.T, c *testbed.Cluster, setup string) *sourceEnv {
	t.Helper()
	e := &sourceEnv{url: c.NewDB(t)}
	e.db = testbed.DBName(e.url)
	e.conn = connect(t, e.url)
	if setup != "" {
		mustExec(t, e.conn, setup)
	}
	cfg, err := pgconn.ParseConfig(e.url)
	if err != nil {
		t.Fatal(err)
	}
	e.peer = &postgres.PeerConfig{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password,
		Database: cfg.Database, TLSOptions: connectors.TLSOptions{DisableTLS: true}}
	var sp connectors.SourcePeer = e.peer
	e.src, err = sp.OpenSource(testCtx(t), sourceApp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.src.Close(context.Background()) })
	e.spec = connectors.StreamSpec{Mirror: "m", Slot: e.db, Publication: e.db + "_pub"}
	return e
}

func pub(name string) connectors.TableName { return connectors.TableName{Schema: "public", Name: name} }

// readAll reads the partitions with a reader under snapshot and returns the
// int4 first column of every row.
func readAll(t *testing.T, src connectors.Source, snapshot string, table connectors.TableName, ts *connectors.TableSchema,
	parts []connectors.Partition) []int {
	t.Helper()
	ctx := testCtx(t)
	r, err := src.OpenReader(ctx, snapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	var ids []int
	for _, p := range parts {
		var reported int64
		n, err := r.Read(ctx, table, ts, p, 100, func(rows [][]connectors.Value) error {
			if len(rows) > 100 {
				t.Errorf("batch of %d rows, want at most 100", len(rows))
			}
			for _, row := range rows {
				if len(row) != len(ts.Columns) || row[0].Kind != connectors.Binary {
					t.Fatalf("row %v", row)
				}
				ids = append(ids, int(int32(binary.BigEndian.Uint32(row[0].Data))))
			}
			return nil
		}, func(rows int64) { reported = rows })
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if reported != n {
			t.Errorf("partition %s: progress %d, read %d", p, reported, n)
		}
	}
	slices.Sort(ids)
	return ids
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestSourceDescribe(t *testing.T) {
	e := newSourceEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); CREATE INDEX t_v ON t (v);
		CREATE TABLE c (id int PRIMARY KEY, t_id int REFERENCES t (id));
		CREATE TABLE nokey (v text)`)
	ctx := testCtx(t)
	ts, err := e.src.Describe(ctx, pub("t"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.Columns) != 2 || ts.Columns[1].Name != "v" || !slices.Equal(ts.PrimaryKey, []string{"id"}) {
		t.Fatalf("described %+v", ts)
	}
	_, err = e.src.Describe(ctx, pub("missing"), nil)
	if !errors.Is(err, connectors.ErrTableNotFound) || !errors.Is(err, postgres.ErrTableNotFound) {
		t.Errorf("missing table: err = %v, want connectors.ErrTableNotFound", err)
	}
	_, err = e.src.Describe(ctx, pub("nokey"), nil)
	if !errors.Is(err, connectors.ErrNoPrimaryKey) || !errors.Is(err, postgres.ErrNoPrimaryKey) {
		t.Errorf("table without key: err = %v, want connectors.ErrNoPrimaryKey", err)
	}

	def := e.src.(connectors.IndexDefiner)
	stmts, err := def.IndexDDL(ctx, ts, pub("t2"))
	if err != nil || len(stmts) != 1 || !strings.Contains(stmts[0], "t2") {
		t.Errorf("IndexDDL = %q, %v", stmts, err)
	}
	cs, err := e.src.Describe(ctx, pub("c"), nil)
	if err != nil {
		t.Fatal(err)
	}
	stmts, err = def.ForeignKeyDDL(ctx, cs, pub("c2"), map[connectors.TableName]connectors.TableName{pub("t"): pub("t2")})
	if err != nil || len(stmts) != 1 || !strings.Contains(stmts[0], `REFERENCES "public"."t2"`) {
		t.Errorf("ForeignKeyDDL = %q, %v", stmts, err)
	}
}

// publication returns the publication's oid and tables (0, nil when it
// does not exist).
func publication(t *testing.T, conn *pgx.Conn, name string) (uint32, []string) {
	t.Helper()
	var oid uint32
	err := conn.QueryRow(testCtx(t), `SELECT oid FROM pg_publication WHERE pubname = $1`, name).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(testCtx(t), `SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, name)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return oid, tables
}

func TestSourcePrepare(t *testing.T) {
	e := newSourceEnv(t, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)`)
	ctx := testCtx(t)
	for range 2 {
		if err := e.src.Prepare(ctx, e.spec, []connectors.TableName{pub("a")}, false); err != nil {
			t.Fatal(err)
		}
	}
	oid, tables := publication(t, e.conn, e.spec.Publication)
	if oid == 0 || !slices.Equal(tables, []string{"a"}) {
		t.Fatalf("publication %d of %q after Prepare", oid, tables)
	}
	if err := e.src.Prepare(ctx, e.spec, []connectors.TableName{pub("a"), pub("b")}, false); err != nil {
		t.Fatal(err)
	}
	oid2, tables := publication(t, e.conn, e.spec.Publication)
	if oid2 != oid || !slices.Equal(tables, []string{"a", "b"}) {
		t.Fatalf("publication %d of %q after Prepare of a and b, want %d altered", oid2, tables, oid)
	}
	if err := e.src.Prepare(ctx, e.spec, []connectors.TableName{pub("b")}, true); err != nil {
		t.Fatal(err)
	}
	oid3, tables := publication(t, e.conn, e.spec.Publication)
	if oid3 == oid || oid3 == 0 || !slices.Equal(tables, []string{"b"}) {
		t.Fatalf("publication %d of %q after replace, want a new one of b", oid3, tables)
	}
}

// readChanges reads the stream until it has been idle for idle after at
// least want inserts, and returns the inserted ids (int4 first column).
func readChanges(t *testing.T, s connectors.Stream, want int, idle time.Duration) []int {
	t.Helper()
	ctx := testCtx(t)
	var ids []int
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		evs, err := s.Read(ctx, nil, 100, idle)
		if err != nil {
			t.Fatal(err)
		}
		changes := 0
		for _, ev := range evs {
			if ev.Kind == connectors.EventChange {
				changes++
				if ev.Change.Kind != connectors.Insert {
					t.Fatalf("change %+v", ev.Change)
				}
				ids = append(ids, int(int32(binary.BigEndian.Uint32(ev.Change.New[0].Data))))
			}
		}
		if changes == 0 && len(ids) >= want {
			return ids
		}
	}
	t.Fatalf("stream gave %v, want %d inserts", ids, want)
	return nil
}

// backends counts the connections of the test's Sources to the database.
func (e *sourceEnv) backends(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.conn.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`,
		e.db, sourceApp).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitBackends waits for the Sources' connections to number n.
func (e *sourceEnv) waitBackends(t *testing.T, n int) {
	t.Helper()
	for i := 0; e.backends(t) != n; i++ {
		if i == 100 {
			t.Fatalf("%d connections of the Source, want %d", e.backends(t), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSourceStartMirror: the snapshot holds a row inserted before it, the
// stream from its position delivers only the row inserted after.
func TestSourceStartMirror(t *testing.T) {
	e := newSourceEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'before')`)
	ctx := testCtx(t)
	if err := e.src.Prepare(ctx, e.spec, []connectors.TableName{pub("t")}, false); err != nil {
		t.Fatal(err)
	}
	// A slot an earlier attempt left is replaced.
	first, err := e.src.StartMirror(ctx, e.spec)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	snap, err := e.src.StartMirror(ctx, e.spec)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if lsn, err := postgres.PositionLSN(snap.Position); err != nil || lsn != snap.Version || lsn == 0 || snap.Name == "" {
		t.Fatalf("snapshot %+v: %v", snap, err)
	}
	var slotLSN string
	if err := e.conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
		e.spec.Slot).Scan(&slotLSN); err != nil {
		t.Fatal(err)
	}
	if want, _ := pgLSN(slotLSN); want != snap.Version {
		t.Errorf("slot at %s, snapshot at %X", slotLSN, snap.Version)
	}
	mustExec(t, e.conn, `INSERT INTO t VALUES (2, 'after')`)

	ts, err := e.src.Describe(ctx, pub("t"), nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := e.src.Plan(ctx, pub("t"), ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, e.src, snap.Name, pub("t"), ts, plan.Partitions); !slices.Equal(got, []int{1}) {
		t.Errorf("snapshot read %v, want [1]", got)
	}
	snap.Close()

	e.waitBackends(t, 1)
	s, err := e.src.Stream(ctx, e.spec, snap.Position, map[connectors.TableName]*connectors.TableSchema{pub("t"): ts})
	if err != nil {
		t.Fatal(err)
	}
	// The stream has a replication and an SQL connection of its own.
	e.waitBackends(t, 3)
	if got := readChanges(t, s, 1, 500*time.Millisecond); !slices.Equal(got, []int{2}) {
		t.Errorf("stream delivered %v, want [2]", got)
	}
	// The Source stays usable while the stream is open.
	if _, err := e.src.Describe(ctx, pub("t"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitBackends(t, 1)
}

func pgLSN(s string) (uint64, error) {
	lsn, err := pglogrepl.ParseLSN(s)
	return uint64(lsn), err
}

// TestSourcePlanRead plans a never-analyzed table (its rows are counted)
// into several partitions and reads every row once; a plan in the JSON
// today's catalog holds reads the same.
func TestSourcePlanRead(t *testing.T) {
	const rows = 20000
	e := newSourceEnv(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, repeat('x', 20) FROM generate_series(1, 20000) g`)
	ctx := testCtx(t)
	ts, err := e.src.Describe(ctx, pub("t"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts.EstimatedRows > 0 || ts.Pages < 10 {
		t.Fatalf("table of %d pages estimated at %d rows, want an unanalyzed table", ts.Pages, ts.EstimatedRows)
	}
	var asked int64
	plan, err := e.src.Plan(ctx, pub("t"), ts, func(est int64) int64 { asked = est; return 3000 })
	if err != nil {
		t.Fatal(err)
	}
	if asked != rows || plan.EstimatedRows != rows || ts.EstimatedRows > 0 {
		t.Errorf("rowsPerPartition asked with %d, plan estimates %d, ts %d; want %d counted", asked, plan.EstimatedRows,
			ts.EstimatedRows, rows)
	}
	if len(plan.Partitions) < 3 {
		t.Fatalf("%d partitions, want several", len(plan.Partitions))
	}
	// The partitions are today's Partition JSON, as the catalog stores it.
	got, err := json.Marshal(plan.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(postgres.PlanPartitions(ts.Pages, rows, 3000))
	if string(got) != string(want) {
		t.Errorf("plan %s, want %s", got, want)
	}
	if ids := readAll(t, e.src, "", pub("t"), ts, plan.Partitions); !slices.Equal(ids, seq(1, rows)) {
		t.Errorf("read %d rows, want 1..%d once each", len(ids), rows)
	}

	// A plan stored in the catalog by the executor before the seam.
	stored := `[{"Index":0,"StartPage":0,"EndPage":3},{"Index":1,"StartPage":3,"EndPage":-1}]`
	var parts []connectors.Partition
	if err := json.Unmarshal([]byte(stored), &parts); err != nil {
		t.Fatal(err)
	}
	if ids := readAll(t, e.src, "", pub("t"), ts, parts[:1]); len(ids) == 0 || len(ids) >= rows {
		t.Errorf("stored partition 0 read %d rows, want some", len(ids))
	}
	if ids := readAll(t, e.src, "", pub("t"), ts, parts); !slices.Equal(ids, seq(1, rows)) {
		t.Errorf("stored plan read %d rows, want 1..%d once each", len(ids), rows)
	}

	// An empty table: one partition, which reads nothing.
	mustExec(t, e.conn, `CREATE TABLE empty (id int PRIMARY KEY)`)
	es, err := e.src.Describe(ctx, pub("empty"), nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err = e.src.Plan(ctx, pub("empty"), es, func(int64) int64 { return 10 })
	if err != nil || len(plan.Partitions) != 1 {
		t.Fatalf("plan of an empty table: %v, %v", plan, err)
	}
	if ids := readAll(t, e.src, "", pub("empty"), es, plan.Partitions); len(ids) != 0 {
		t.Errorf("empty table read %v", ids)
	}
	// A bad partition is an error.
	r, err := e.src.OpenReader(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if _, err := r.Read(ctx, pub("t"), ts, connectors.Partition(`"x"`), 10, func([][]connectors.Value) error { return nil }, nil); err == nil {
		t.Error("read of a bad partition: no error")
	}
}

// tempSlots counts the temporary resync slots of the database.
func (e *sourceEnv) tempSlots(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.conn.QueryRow(testCtx(t), `SELECT count(*) FROM pg_replication_slots
		WHERE database = $1 AND temporary AND slot_name LIKE 'sluice_resync_%'`, e.db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSourceTableSnapshot(t *testing.T) {
	e := newSourceEnv(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`)
	ctx := testCtx(t)
	snap, err := e.src.(connectors.TableSnapshotter).TableSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if lsn, err := postgres.PositionLSN(snap.Position); err != nil || lsn == 0 || lsn != snap.Version {
		t.Fatalf("snapshot %+v: %v", snap, err)
	}
	if n := e.tempSlots(t); n != 1 {
		t.Errorf("%d temporary slots while the snapshot is open, want 1", n)
	}
	mustExec(t, e.conn, `INSERT INTO t VALUES (2)`)
	ts, err := e.src.Describe(ctx, pub("t"), nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := e.src.Plan(ctx, pub("t"), ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := readAll(t, e.src, snap.Name, pub("t"), ts, plan.Partitions); !slices.Equal(ids, []int{1}) {
		t.Errorf("snapshot read %v, want [1]", ids)
	}
	if ids := readAll(t, e.src, "", pub("t"), ts, plan.Partitions); !slices.Equal(ids, []int{1, 2}) {
		t.Errorf("fresh read %v, want [1 2]", ids)
	}
	var now string
	if err := e.conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if cur, _ := pgLSN(now); cur <= snap.Version {
		t.Errorf("WAL at %s after an insert, snapshot at %X", now, snap.Version)
	}
	snap.Close()
	for i := 0; e.tempSlots(t) != 0; i++ {
		if i == 100 {
			t.Fatal("the temporary slot outlived the snapshot")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSourceCheckStreamTeardown(t *testing.T) {
	e := newSourceEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := testCtx(t)
	if err := e.src.CheckStream(ctx, e.spec); err != nil {
		t.Errorf("CheckStream without a slot: %v", err)
	}
	if err := e.src.Prepare(ctx, e.spec, []connectors.TableName{pub("t")}, false); err != nil {
		t.Fatal(err)
	}
	snap, err := e.src.StartMirror(ctx, e.spec)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close()
	if err := e.src.CheckStream(ctx, e.spec); err != nil {
		t.Errorf("CheckStream of a healthy slot: %v", err)
	}
	// A stream holds the slot: Teardown ends it.
	s, err := e.src.Stream(ctx, e.spec, snap.Position, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for range 2 {
		if err := e.src.Teardown(ctx, e.spec); err != nil {
			t.Fatal(err)
		}
	}
	var slots int
	if err := e.conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, e.spec.Slot).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if oid, _ := publication(t, e.conn, e.spec.Publication); slots != 0 || oid != 0 {
		t.Errorf("after Teardown: %d slots, publication %d", slots, oid)
	}
	if err := e.src.CheckStream(ctx, e.spec); err != nil {
		t.Errorf("CheckStream after Teardown: %v", err)
	}
	// Streaming a slot that is gone fails, and is not a lost stream.
	_, err = e.src.Stream(ctx, e.spec, snap.Position, nil)
	if err == nil || errors.Is(err, connectors.ErrStreamLost) {
		t.Errorf("Stream of a dropped slot: err = %v", err)
	}
}

func TestSourceReadColumns(t *testing.T) {
	e := newSourceEnv(t, `CREATE TABLE t (id int PRIMARY KEY, a text);
		INSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 5) g;
		ALTER TABLE t ADD COLUMN b int DEFAULT 7, ADD COLUMN c int`)
	ctx := testCtx(t)
	cr := e.src.(connectors.ColumnReader)
	vals, err := cr.CurrentValues(ctx, pub("t"), []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := vals["b"]; len(vals) != 1 || !ok || b.Kind != connectors.Binary || binary.BigEndian.Uint32(b.Data) != 7 {
		t.Errorf("CurrentValues = %v, want b = 7 only", vals)
	}
	var batches []int
	sum := 0
	n, err := cr.ReadColumns(ctx, pub("t"), []string{"id"}, []string{"b", "c"}, 2, func(rows [][]connectors.Value) error {
		batches = append(batches, len(rows))
		for _, r := range rows {
			if len(r) != 3 || r[1].Kind != connectors.Binary || binary.BigEndian.Uint32(r[1].Data) != 7 || r[2].Kind != connectors.Null {
				t.Fatalf("row %v", r)
			}
			sum += int(binary.BigEndian.Uint32(r[0].Data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 || sum != 15 || !slices.Equal(batches, []int{2, 2, 1}) {
		t.Errorf("read %d rows (id sum %d) in batches %v", n, sum, batches)
	}
	stop := errors.New("stop")
	if _, err := cr.ReadColumns(ctx, pub("t"), []string{"id"}, []string{"a"}, 2, func([][]connectors.Value) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ReadColumns whose fn fails: err = %v", err)
	}
	// The Source is still usable.
	if _, err := e.src.Describe(ctx, pub("t"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestSourceStreamLost invalidates a slot (on a cluster of its own that
// keeps 1MB of WAL for slots): CheckStream and Stream say the stream is lost.
func TestSourceStreamLost(t *testing.T) {
	ctx := testCtx(t)
	c, err := testbed.StartWith(ctx, "lost", map[string]string{"max_slot_wal_keep_size": "1MB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop) // after the test's other cleanups
	e := newSourceEnvOn(t, c, `CREATE TABLE t (id int PRIMARY KEY)`)
	if err := e.src.Prepare(ctx, e.spec, []connectors.TableName{pub("t")}, false); err != nil {
		t.Fatal(err)
	}
	snap, err := e.src.StartMirror(ctx, e.spec)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close()
	for i := 0; ; i++ {
		var status string
		if err := e.conn.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, e.spec.Slot).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if status == "lost" {
			break
		}
		if i == 20 {
			t.Fatalf("slot still %s", status)
		}
		mustExec(t, e.conn, `INSERT INTO t SELECT count(*) FROM t; SELECT pg_switch_wal(); CHECKPOINT`)
	}
	err = e.src.CheckStream(ctx, e.spec)
	if !errors.Is(err, connectors.ErrStreamLost) || !strings.Contains(err.Error(), e.spec.Slot) ||
		!strings.Contains(err.Error(), "max_slot_wal_keep_size") {
		t.Errorf("CheckStream of a lost slot: %v", err)
	}
	_, err = e.src.Stream(ctx, e.spec, snap.Position, nil)
	if !errors.Is(err, connectors.ErrStreamLost) {
		t.Errorf("Stream of a lost slot: err = %v, want connectors.ErrStreamLost", err)
	}
}

// A Postgres kind remembers that a server refused TLS (sslmode=prefer):
// its peers' next connections to it try plain text first, TLS second;
// another kind (another program) does not know; disable_tls and
// require_tls are as they were.
func TestPreferTLSRemembersRefusal(t *testing.T) {
	ctx := testCtx(t)
	opts := map[string]string{"host": "127.0.0.1", "port": strconv.Itoa(srcCluster.Port()), "user": "postgres",
		"password": srcCluster.Password(), "database": "postgres"}
	order := func(kind connectors.Kind, extra ...string) (*postgres.PeerConfig, string) {
		t.Helper()
		o := maps.Clone(opts)
		for i := 0; i+1 < len(extra); i += 2 {
			o[extra[i]] = extra[i+1]
		}
		p, err := kind.Parse(o)
		if err != nil {
			t.Fatal(err)
		}
		pc := p.(*postgres.PeerConfig)
		cfg, err := pc.ConnConfig("sluice-test")
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case cfg.TLSConfig == nil && len(cfg.Fallbacks) == 0:
			return pc, "plain"
		case cfg.TLSConfig != nil && len(cfg.Fallbacks) == 0:
			return pc, "tls"
		case cfg.TLSConfig != nil && cfg.Fallbacks[0].TLSConfig == nil:
			return pc, "tls,plain"
		case cfg.TLSConfig == nil && cfg.Fallbacks[0].TLSConfig != nil:
			return pc, "plain,tls"
		}
		t.Fatalf("attempts: %+v", cfg)
		return nil, ""
	}
	kind := postgres.Kind()
	pc, got := order(kind)
	if got != "tls,plain" {
		t.Fatalf("first connection: %s, want tls,plain", got)
	}
	conn, err := pc.ConnectSQL(ctx, "sluice-test")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	// The test server has no TLS: the next connections, of any peer of
	// this kind to it, try plain text first, and connect.
	pc, got = order(kind)
	if got != "plain,tls" {
		t.Fatalf("after the server refused TLS: %s, want plain,tls", got)
	}
	conn, err = pc.ConnectSQL(ctx, "sluice-test")
	if err != nil {
		t.Fatal(err)
	}
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || ssl {
		t.Errorf("ssl %v, %v", ssl, err)
	}
	conn.Close(ctx)
	if _, got := order(kind); got != "plain,tls" {
		t.Errorf("a plain-text connection tried first: %s, want plain,tls still", got)
	}
	if _, got := order(postgres.Kind()); got != "tls,plain" {
		t.Errorf("another kind: %s, want tls,plain", got)
	}
	if _, got := order(kind, "disable_tls", "true"); got != "plain" {
		t.Errorf("disable_tls: %s", got)
	}
	if _, got := order(kind, "require_tls", "true"); got != "tls" {
		t.Errorf("require_tls: %s", got)
	}
}
