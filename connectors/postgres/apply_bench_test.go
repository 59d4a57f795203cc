package postgres_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// TestApplyThroughput prints the applier's throughput for one large insert
// batch and one large update batch, next to native logical replication
// applying the same transactions between the test clusters in the same run
// (from the source's commit to the change being visible on the
// destination). It asserts nothing about time. SLUICE_BENCH_ROWS sets the
// row count (default 200000, 20000 under the race detector); -short skips it.
func TestApplyThroughput(t *testing.T) {
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
	const ddl = "CREATE TABLE public.bench (id bigint PRIMARY KEY, a bigint, b text, c timestamptz)"
	native := nativeApply(t, ddl, n)

	conn := connect(t, dstCluster.NewDB(t))
	mustExec(t, conn, ddl)
	s := &connectors.TableSchema{
		Name: connectors.TableName{Schema: "public", Name: "bench"},
		Columns: []connectors.Column{
			{Name: "id", Type: "bigint", TypeOID: pgtype.Int8OID},
			{Name: "a", Type: "bigint", TypeOID: pgtype.Int8OID},
			{Name: "b", Type: "text", TypeOID: pgtype.TextOID},
			{Name: "c", Type: "timestamp with time zone", TypeOID: pgtype.TimestamptzOID},
		},
		PrimaryKey: []string{"id"},
	}
	f := &apFixture{t: t, schema: s, dt: postgres.DestTable{Source: s.Name, Dest: s.Name, Schema: s}}
	a := newApplier(t, conn, "bench", f)
	now := time.Now()
	batch := func(lsn uint64, kind connectors.ChangeKind, delta int64) *connectors.Batch {
		b := &connectors.Batch{End: postgres.LSNPosition(lsn), Changes: make([]connectors.Change, n)}
		for i := range n {
			id := int64(i + 1)
			b.Changes[i] = connectors.Change{Kind: kind, Table: s.Name,
				New: apRow(t, s, id, id+delta, fmt.Sprintf("%032x", id*7919+delta), now)}
		}
		return b
	}
	ins, upd := batch(1, connectors.Insert, 0), batch(2, connectors.Update, 1)
	measure := func(b *connectors.Batch) time.Duration {
		start := time.Now()
		mustApply(t, a, b)
		return time.Since(start)
	}
	insTime, updTime := measure(ins), measure(upd)
	wantRows(t, conn, "SELECT count(*) || ' ' || sum(a - id) FROM public.bench", fmt.Sprintf("%d %d", n, n))

	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	t.Logf("%d-row batches: applier vs native logical replication", n)
	if raceEnabled {
		t.Logf("  (race detector on: the applier's figures are not representative)")
	}
	t.Logf("  inserts: applier %8.0f rows/s (%v), native %8.0f rows/s (%v), ratio %.2f",
		rate(insTime), insTime.Round(time.Millisecond), rate(native.ins), native.ins.Round(time.Millisecond), native.ins.Seconds()/insTime.Seconds())
	t.Logf("  updates: applier %8.0f rows/s (%v), native %8.0f rows/s (%v), ratio %.2f",
		rate(updTime), updTime.Round(time.Millisecond), rate(native.upd), native.upd.Round(time.Millisecond), native.upd.Seconds()/updTime.Seconds())
}

type nativeTimes struct{ ins, upd time.Duration }

// nativeApply replicates an n-row insert and an n-row update of every row
// with a publication on the source cluster and a subscription on the
// destination cluster, timing each from the source commit until the
// destination shows it (each is one transaction, so it appears at once).
func nativeApply(t *testing.T, ddl string, n int) nativeTimes {
	ctx := testCtx(t)
	srcURL := srcCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstCluster.NewDB(t))
	mustExec(t, src, ddl)
	mustExec(t, dst, ddl)
	mustExec(t, src, "CREATE PUBLICATION bench_pub FOR TABLE public.bench")
	mustExec(t, dst, "CREATE SUBSCRIPTION bench_sub CONNECTION '"+srcURL+"' PUBLICATION bench_pub WITH (copy_data = false)")
	t.Cleanup(func() {
		// Before the databases are dropped: the slot lives on the source.
		_, _ = dst.Exec(ctx, "DROP SUBSCRIPTION IF EXISTS bench_sub")
	})
	waitFor := func(what, sql string) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var ok bool
			if err := dst.QueryRow(ctx, sql).Scan(&ok); err != nil {
				t.Fatalf("wait for %s: %v", what, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("native replication: timed out waiting for %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Ready once a warm-up row has gone through.
	mustExec(t, src, "INSERT INTO public.bench VALUES (0, 0, 'warm-up', now())")
	waitFor("the subscription to start", "SELECT EXISTS (SELECT 1 FROM public.bench WHERE id = 0)")

	timed := func(what, sql, done string) time.Duration {
		if _, err := src.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor(what, done)
		return time.Since(start)
	}
	var nt nativeTimes
	nt.ins = timed("the insert", fmt.Sprintf(
		"INSERT INTO public.bench SELECT g, g, lpad(to_hex(g * 7919), 32, '0'), now() FROM generate_series(1, %d) g", n),
		fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM public.bench WHERE id = %d)", n))
	nt.upd = timed("the update", "UPDATE public.bench SET a = a + 1, b = lpad(to_hex(id * 7919 + 1), 32, '0') WHERE id > 0",
		fmt.Sprintf("SELECT a = %d FROM public.bench WHERE id = %d", n+1, n))
	return nt
}
