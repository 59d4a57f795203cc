package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

func TestEnsureMetadataRace(t *testing.T) {
	url := dstCluster.NewDB(t)
	const callers = 4
	conns := make([]*pgx.Conn, callers)
	for i := range conns {
		conns[i] = connect(t, url)
	}
	for round := range 5 {
		meta := fmt.Sprintf("meta %d", round)
		var wg sync.WaitGroup
		errs := make([]error, callers)
		for i, c := range conns {
			wg.Go(func() { errs[i] = postgres.EnsureMetadata(context.Background(), c, meta) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d caller %d: %v", round, i, err)
			}
		}
	}
	// And once more: nothing to do.
	if err := postgres.EnsureMetadata(testCtx(t), conns[0], "meta 0"); err != nil {
		t.Error(err)
	}
}

func TestMetadata(t *testing.T) {
	for _, meta := range []string{"", `Odd "Meta"`} {
		t.Run(fmt.Sprintf("%q", meta), func(t *testing.T) {
			ctx := testCtx(t)
			conn := connect(t, dstCluster.NewDB(t))
			if err := postgres.EnsureMetadata(ctx, conn, meta); err != nil {
				t.Fatal(err)
			}
			if meta == "" {
				wantRows(t, conn, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = '_sluice'",
					"mirror_state,owned_tables,retired_tables,snapshot_partitions,table_state")
			}
			if _, ok, err := postgres.LastPosition(ctx, conn, meta, "m1"); err != nil || ok {
				t.Fatalf("LastPosition of a new mirror: ok=%v err=%v", ok, err)
			}
			tbl := connectors.TableName{Schema: "public", Name: "t"}
			other := connectors.TableName{Schema: "public", Name: "u"}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				for _, step := range []func() error{
					func() error { return postgres.SetPosition(ctx, tx, meta, "m1", postgres.LSNPosition(0x16B3748)) },
					func() error { return postgres.SetPosition(ctx, tx, meta, "m1", postgres.LSNPosition(0xFFFFFFFF0)) },
					func() error { return postgres.SetPosition(ctx, tx, meta, "m2", "binlog.000003:42") },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m1", tbl, 0, 10, false) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m1", tbl, 3, 5, false) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m1", tbl, 3, 6, false) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m1", other, 0, 1, false) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m2", tbl, 1, 2, false) },
				} {
					if err := step(); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if pos, ok, err := postgres.LastPosition(ctx, conn, meta, "m1"); err != nil || !ok || pos != "0000000FFFFFFFF0" {
				t.Errorf("LastPosition = %s, %v, %v; want 0000000FFFFFFFF0", pos, ok, err)
			}
			// lsn holds the LSN of a position that is one, else 0.
			wantRows(t, conn, "SELECT string_agg(mirror || '=' || lsn, ',' ORDER BY mirror) FROM "+
				pgx.Identifier{metaOrDefault(meta)}.Sanitize()+".mirror_state", "m1=68719476720,m2=0")
			wantParts := func(mirror string, table connectors.TableName, want map[int]int64) {
				t.Helper()
				got, err := postgres.DonePartitions(ctx, conn, meta, mirror, table)
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(got, want) {
					t.Errorf("DonePartitions(%s, %s) = %v, want %v", mirror, table, got, want)
				}
			}
			wantParts("m1", tbl, map[int]int64{0: 10, 3: 6})
			wantParts("m1", other, map[int]int64{0: 1})

			if err := postgres.ClearTable(ctx, conn, meta, "m1", tbl); err != nil {
				t.Fatal(err)
			}
			wantParts("m1", tbl, map[int]int64{})
			wantParts("m1", other, map[int]int64{0: 1})
			wantParts("m2", tbl, map[int]int64{1: 2})

			if err := postgres.ClearMirror(ctx, conn, meta, "m1"); err != nil {
				t.Fatal(err)
			}
			wantParts("m1", other, map[int]int64{})
			if _, ok, err := postgres.LastPosition(ctx, conn, meta, "m1"); err != nil || ok {
				t.Errorf("LastPosition after ClearMirror: ok=%v err=%v", ok, err)
			}
			if pos, ok, err := postgres.LastPosition(ctx, conn, meta, "m2"); err != nil || !ok || pos != "binlog.000003:42" {
				t.Errorf("LastPosition of the other mirror = %s, %v, %v; want binlog.000003:42", pos, ok, err)
			}
			wantParts("m2", tbl, map[int]int64{1: 2})

			// A partition recorded before names were quoted, under
			// public.Upper.Dot unquoted, is still found, and cleared.
			dotted := connectors.TableName{Schema: "public", Name: "Upper.Dot"}
			if _, err := conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{metaOrDefault(meta)}.Sanitize()+
				".snapshot_partitions (mirror, source_table, partition, rows) VALUES ('m3', 'public.Upper.Dot', 4, 9)"); err != nil {
				t.Fatal(err)
			}
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				return postgres.MarkPartitionDone(ctx, tx, meta, "m3", dotted, 5, 1, false)
			})
			if err != nil {
				t.Fatal(err)
			}
			wantParts("m3", dotted, map[int]int64{4: 9, 5: 1})
			if err := postgres.ClearTable(ctx, conn, meta, "m3", dotted); err != nil {
				t.Fatal(err)
			}
			wantParts("m3", dotted, map[int]int64{})
		})
	}
}

// metaOrDefault is the metadata schema's name for meta ("" is _sluice).
func metaOrDefault(meta string) string {
	if meta == "" {
		return "_sluice"
	}
	return meta
}

// TestMetadataBeforePositions: metadata written before positions (no
// position columns, an LSN in lsn) gets the columns from EnsureMetadata and
// reads as the LSNs' positions; what is written then has both columns.
func TestMetadataBeforePositions(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, dstCluster.NewDB(t))
	if err := postgres.EnsureMetadata(ctx, conn, ""); err != nil {
		t.Fatal(err)
	}
	mustExec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// The metadata as a Sluice from before positions left it.
	mustExec(`ALTER TABLE _sluice.mirror_state DROP COLUMN position;
ALTER TABLE _sluice.table_state DROP COLUMN position;
INSERT INTO _sluice.mirror_state (mirror, lsn) VALUES ('m', x'1F00000A8'::bigint);
INSERT INTO _sluice.table_state (mirror, source_table, stage, strategy, lsn)
VALUES ('m', 'public.t', 'catchup', 'swap', 22216), ('m', 'public.u', 'copy', 'truncate', 0)`)
	for range 2 { // the second adds nothing
		if err := postgres.EnsureMetadata(ctx, conn, ""); err != nil {
			t.Fatal(err)
		}
	}
	wantRows(t, conn, "SELECT count(*)::text FROM pg_attribute WHERE attname = 'position' AND attrelid IN "+
		"('_sluice.mirror_state'::regclass, '_sluice.table_state'::regclass)", "2")
	if pos, ok, err := postgres.LastPosition(ctx, conn, "", "m"); err != nil || !ok || pos != postgres.LSNPosition(0x1F00000A8) {
		t.Fatalf("LastPosition = %s, %v, %v; want %s", pos, ok, err, postgres.LSNPosition(0x1F00000A8))
	}
	states, err := postgres.TableStates(ctx, conn, "", "m")
	if err != nil {
		t.Fatal(err)
	}
	tt, tu := connectors.TableName{Schema: "public", Name: "t"}, connectors.TableName{Schema: "public", Name: "u"}
	if states[tt].Position != postgres.LSNPosition(22216) || states[tu].Position != "" || len(states) != 2 {
		t.Fatalf("table states %+v", states)
	}
	// An applier begins at the recorded LSN and records its batch in both.
	f := newItems(t, conn, "", "")
	a := newApplier(t, conn, "m", f)
	if rec, err := a.Begin(ctx); err != nil || rec != postgres.LSNPosition(0x1F00000A8) {
		t.Fatalf("Begin = %s, %v", rec, err)
	}
	if err := a.Add(ctx, []connectors.Change{f.ins(1, "a", "x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, postgres.LSNPosition(0x1F0000100)); err != nil {
		t.Fatal(err)
	}
	wantRows(t, conn, "SELECT lsn || ' ' || position FROM _sluice.mirror_state WHERE mirror = 'm'",
		fmt.Sprint(0x1F0000100)+" 00000001F0000100")
	if err := postgres.PutTableState(ctx, conn, "", "m", connectors.TableState{Table: tt, Stage: connectors.StageCatchup,
		Strategy: "swap", Position: postgres.LSNPosition(22300)}); err != nil {
		t.Fatal(err)
	}
	wantRows(t, conn, "SELECT lsn || ' ' || position FROM _sluice.table_state WHERE source_table = 'public.t'",
		"22300 "+string(postgres.LSNPosition(22300)))
}

// Two workers that copied the same partition of a plain (appending) load
// cannot both commit it: the second waits for the first's key, then fails,
// and its transaction, rows included, is rolled back. An upserting load's
// repeat overwrites the count.
func TestMarkPartitionDoneOnce(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	a, b := connect(t, url), connect(t, url)
	if err := postgres.EnsureMetadata(ctx, a, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	tbl := connectors.TableName{Schema: "public", Name: "t"}
	first, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Exec(ctx, "INSERT INTO t SELECT generate_series(1, 10)"); err != nil {
		t.Fatal(err)
	}
	if err := postgres.MarkPartitionDone(ctx, first, "", "m", tbl, 4, 10, true); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		second <- pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO t SELECT generate_series(1, 10)"); err != nil {
				return err
			}
			return postgres.MarkPartitionDone(ctx, tx, "", "m", tbl, 4, 10, true)
		})
	}()
	select {
	case err := <-second:
		t.Fatalf("the second mark did not wait for the first transaction: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err == nil || !strings.Contains(err.Error(), "loaded meanwhile by another worker") {
		t.Fatalf("second mark of partition 4 = %v, want it refused", err)
	}
	wantRows(t, a, "SELECT count(*)::text FROM t", "10")
	// An upsert's repeat overwrites.
	err = pgx.BeginFunc(ctx, a, func(tx pgx.Tx) error { return postgres.MarkPartitionDone(ctx, tx, "", "m", tbl, 4, 12, false) })
	if err != nil {
		t.Fatal(err)
	}
	wantRows(t, a, "SELECT rows::text FROM _sluice.snapshot_partitions WHERE mirror = 'm'", "12")
}
