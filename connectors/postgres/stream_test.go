package postgres_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// streamEnv is a source database with a publication of public.acc and a
// slot made before any change of interest.
type streamEnv struct {
	url    string
	src    *pgx.Conn
	slot   postgres.Slot
	schema *connectors.TableSchema
}

// newStreamEnv creates public.acc (pgbench_accounts' shape) with rows
// 1..rows, a publication and a slot.
func newStreamEnv(t *testing.T, rows int) *streamEnv {
	t.Helper()
	ctx := testCtx(t)
	e := &streamEnv{url: srcCluster.NewDB(t)}
	e.src = connect(t, e.url)
	mustExec(t, e.src, fmt.Sprintf(`
CREATE TABLE public.acc (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
INSERT INTO public.acc SELECT g, g / 100000, 0, '' FROM generate_series(1, %d) g;
CREATE PUBLICATION acc_pub FOR TABLE public.acc`, rows))
	repl := replConn(t, e.url)
	slot, err := postgres.CreateSlot(ctx, repl, "acc_slot")
	if err != nil {
		t.Fatal(err)
	}
	repl.Close(ctx)
	e.slot = slot
	e.schema, err = postgres.DescribeTable(ctx, e.src, connectors.TableName{Schema: "public", Name: "acc"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func replConn(t *testing.T, url string) *pgconn.PgConn {
	t.Helper()
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// start streams the slot from its consistent point.
func (e *streamEnv) start(t *testing.T) *postgres.Stream {
	t.Helper()
	s, err := postgres.StartStream(testCtx(t), replConn(t, e.url), postgres.StreamConfig{
		Slot: e.slot.Name, Publication: "acc_pub", Start: postgres.LSNPosition(e.slot.ConsistentLSN),
		Tables:       map[connectors.TableName]*connectors.TableSchema{e.schema.Name: e.schema},
		DescribeType: postgres.TypeDescriber(e.src),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestStreamEvents decodes a few transactions, an idle wait and a
// cancellation.
func TestStreamEvents(t *testing.T) {
	e := newStreamEnv(t, 3)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = 5 WHERE aid = 1`)
	mustExec(t, e.src, `BEGIN; DELETE FROM public.acc WHERE aid = 2; UPDATE public.acc SET aid = 30 WHERE aid = 3;
		INSERT INTO public.acc VALUES (4, 0, 4, 'x'); COMMIT`)
	mustExec(t, e.src, `TRUNCATE public.acc`)
	s := e.start(t)
	ctx := testCtx(t)
	var got []string
	var last uint64
	for len(got) < 11 {
		ev, err := s.Next(ctx, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ev == nil {
			t.Fatalf("idle after %q", got)
		}
		switch ev.Kind {
		case connectors.EventBegin:
			if ev.Version != posLSN(t, ev.Pos) || ev.Version == 0 || ev.Latest == "" {
				t.Errorf("begin at %s, version %X, latest %s", ev.Pos, ev.Version, ev.Latest)
			}
			got = append(got, "begin")
		case connectors.EventCommit:
			if posLSN(t, ev.Pos) <= last {
				t.Errorf("commit lsn %X after %X", posLSN(t, ev.Pos), last)
			}
			last = posLSN(t, ev.Pos)
			got = append(got, "commit")
		case connectors.EventChange:
			d := string(ev.Change.Kind)
			if ev.Change.Old != nil {
				d += "+old"
			}
			got = append(got, d)
		}
	}
	want := "begin U commit begin D+old U+old I commit begin T commit"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("events %q, want %q", g, want)
	}
	// Idle: nil after about the wait (keepalives are progress events).
	for {
		start := time.Now()
		ev, err := s.Next(ctx, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if ev == nil {
			if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
				t.Errorf("idle Next returned after %v, want about 200ms", d)
			}
			break
		}
		if ev.Kind != connectors.EventProgress {
			t.Fatalf("unexpected event %+v", ev)
		}
	}
	// A cancelled Next returns the context's error; keepalives (progress
	// events) may still come before the cancel lands.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	for deadline := time.Now().Add(10 * time.Second); ; {
		ev, err := s.Next(cctx, time.Minute)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Next after cancel: err = %v, want context.Canceled", err)
			}
			break
		}
		if ev == nil || ev.Kind != connectors.EventProgress || time.Now().After(deadline) {
			t.Fatalf("Next after cancel: %+v, nil error; want context.Canceled", ev)
		}
	}
}

// TestStreamThroughput logs how fast the stream decodes one large update
// transaction (SLUICE_BENCH_ROWS rows, default 200000), from the start of
// streaming to its commit. It asserts nothing about time.
func TestStreamThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("throughput figures skipped in -short mode")
	}
	n := 200000
	if raceEnabled {
		n = 20000
	}
	if v, err := strconv.Atoi(os.Getenv("SLUICE_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	e := newStreamEnv(t, n)
	mustExec(t, e.src, `UPDATE public.acc SET abalance = abalance + 1`)
	ctx := testCtx(t)
	start := time.Now()
	s := e.start(t)
	changes := 0
	var first time.Duration
	var buf []connectors.Event
	for done := false; !done; {
		var err error
		buf, err = s.Read(ctx, buf[:0], 1024, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) == 0 {
			t.Fatal("stream idle before the commit")
		}
		for _, ev := range buf {
			if ev.Kind == connectors.EventChange {
				if changes == 0 {
					first = time.Since(start)
				}
				changes++
			}
			done = done || ev.Kind == connectors.EventCommit && changes > 0
		}
	}
	d := time.Since(start)
	if changes != n {
		t.Errorf("%d changes, want %d", changes, n)
	}
	t.Logf("decoded %d updates in %v (first after %v): %.0f rows/s", n, d.Round(time.Millisecond),
		first.Round(time.Millisecond), float64(n)/d.Seconds())
}

// TestStreamValues checks the decoded values: nulls, unchanged TOAST
// values, old keys of key changes and of REPLICA IDENTITY FULL tables, and
// a column added mid-stream.
func TestStreamValues(t *testing.T) {
	ctx := testCtx(t)
	url := srcCluster.NewDB(t)
	src := connect(t, url)
	mustExec(t, src, `
CREATE TABLE public.t (id int PRIMARY KEY, n int, big text);
ALTER TABLE public.t ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE public.f (id int PRIMARY KEY, v text);
ALTER TABLE public.f REPLICA IDENTITY FULL;
CREATE TABLE public.skipped (id int PRIMARY KEY);
CREATE PUBLICATION p FOR TABLE public.t, public.f, public.skipped`)
	repl := replConn(t, url)
	slot, err := postgres.CreateSlot(ctx, repl, "values_slot")
	if err != nil {
		t.Fatal(err)
	}
	repl.Close(ctx)
	tables := map[connectors.TableName]*connectors.TableSchema{}
	for _, name := range []string{"t", "f"} {
		tn := connectors.TableName{Schema: "public", Name: name}
		if tables[tn], err = postgres.DescribeTable(ctx, src, tn, nil); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("b", 5000)
	mustExec(t, src, `INSERT INTO public.t VALUES (1, NULL, $1)`, big)
	mustExec(t, src, `UPDATE public.t SET n = 2 WHERE id = 1`)
	mustExec(t, src, `UPDATE public.t SET id = 3 WHERE id = 1`)
	mustExec(t, src, `INSERT INTO public.skipped VALUES (1); INSERT INTO public.f VALUES (1, 'a')`)
	mustExec(t, src, `UPDATE public.f SET v = 'b'`)
	mustExec(t, src, `DELETE FROM public.f`)
	mustExec(t, src, `ALTER TABLE public.t ADD COLUMN extra text; INSERT INTO public.t VALUES (4, 4, 'small', 'e')`)

	s, err := postgres.StartStream(ctx, replConn(t, url), postgres.StreamConfig{
		Slot: slot.Name, Publication: "p", Start: postgres.LSNPosition(slot.ConsistentLSN), Tables: tables,
		DescribeType: postgres.TypeDescriber(src),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	show := func(vals []connectors.Value) string {
		if vals == nil {
			return "-"
		}
		var parts []string
		for _, v := range vals {
			switch {
			case v.Kind == connectors.Null:
				parts = append(parts, "null")
			case v.Kind == connectors.Unchanged:
				parts = append(parts, "unchanged")
			case len(v.Data) == 4:
				parts = append(parts, fmt.Sprint(int32(binary.BigEndian.Uint32(v.Data))))
			case len(v.Data) > 10:
				parts = append(parts, fmt.Sprintf("text(%d)", len(v.Data)))
			default:
				parts = append(parts, string(v.Data))
			}
		}
		return strings.Join(parts, ",")
	}
	var got []string
	var begin uint64
	for commits := 0; commits < 7; {
		evs, err := s.Read(ctx, nil, 100, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			t.Fatalf("stream idle after %q", got)
		}
		for _, ev := range evs {
			switch ev.Kind {
			case connectors.EventBegin:
				begin = posLSN(t, ev.Pos)
			case connectors.EventCommit:
				if posLSN(t, ev.Pos) <= begin {
					t.Errorf("commit ends at %X, not after its begin's %X", posLSN(t, ev.Pos), begin)
				}
				commits++
			case connectors.EventNewColumns:
				got = append(got, fmt.Sprintf("new columns of %s: %d", ev.Table.Name, len(ev.NewColumns)))
			case connectors.EventChange:
				c := ev.Change
				got = append(got, fmt.Sprintf("%c %s new=%s old=%s", c.Kind, c.Table.Name, show(c.New), show(c.Old)))
			}
		}
	}
	want := []string{
		"I t new=1,null,text(5000) old=-",
		"U t new=1,2,unchanged old=-",
		"U t new=3,2,unchanged old=1,null,null",
		"I f new=1,a old=-",
		"U f new=1,b old=-",
		"D f new=- old=1,b",
		"new columns of t: 1",
		"I t new=4,4,small,e old=-",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStreamHeartbeat: Heartbeat, called while another goroutine reads
// the stream, writes a logical message on the stream's SQL connection,
// which comes back as progress beyond where the source was; a stream
// without an SQL connection refuses it.
func TestStreamHeartbeat(t *testing.T) {
	e := newStreamEnv(t, 1)
	ctx := testCtx(t)
	sql := connect(t, e.url)
	s, err := postgres.StartStream(ctx, replConn(t, e.url), postgres.StreamConfig{
		Slot: e.slot.Name, Publication: "acc_pub", Start: postgres.LSNPosition(e.slot.ConsistentLSN),
		Tables: map[connectors.TableName]*connectors.TableSchema{e.schema.Name: e.schema}, SQL: sql,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	// The insert position: it moves as soon as the message is written.
	insertLSN := func() uint64 {
		var n int64
		if err := e.src.QueryRow(ctx, `SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return uint64(n)
	}
	before := insertLSN()
	beat := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // while Read waits
		beat <- s.Heartbeat(ctx)
	}()
	var got uint64
	for deadline := time.Now().Add(30 * time.Second); got < before; {
		if time.Now().After(deadline) {
			t.Fatalf("no progress beyond %X after the heartbeat", before)
		}
		evs, err := s.Read(ctx, nil, 100, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Kind == connectors.EventProgress {
				got = max(got, posLSN(t, ev.Pos))
			}
		}
	}
	if err := <-beat; err != nil {
		t.Fatal(err)
	}
	if after := insertLSN(); after <= before {
		t.Errorf("the source's WAL did not move (%X): no heartbeat was written", after)
	}

	repl := replConn(t, e.url)
	slot2, err := postgres.CreateSlot(ctx, repl, "acc_slot2")
	if err != nil {
		t.Fatal(err)
	}
	repl.Close(ctx)
	bare, err := postgres.StartStream(ctx, replConn(t, e.url), postgres.StreamConfig{
		Slot: slot2.Name, Publication: "acc_pub", Start: postgres.LSNPosition(slot2.ConsistentLSN),
		Tables: map[connectors.TableName]*connectors.TableSchema{e.schema.Name: e.schema},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close(context.Background())
	if err := bare.Heartbeat(ctx); err == nil || !strings.Contains(err.Error(), "no SQL connection") {
		t.Errorf("Heartbeat without an SQL connection: err = %v", err)
	}
}

// posLSN is the LSN of a position the stream made.
func posLSN(t testing.TB, p connectors.Position) uint64 {
	t.Helper()
	lsn, err := postgres.PositionLSN(p)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}
