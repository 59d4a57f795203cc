package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

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
					"mirror_state,owned_tables,snapshot_partitions,table_state")
			}
			if _, ok, err := postgres.LastLSN(ctx, conn, meta, "m1"); err != nil || ok {
				t.Fatalf("LastLSN of a new mirror: ok=%v err=%v", ok, err)
			}
			tbl := connectors.TableName{Schema: "public", Name: "t"}
			other := connectors.TableName{Schema: "public", Name: "u"}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				for _, step := range []func() error{
					func() error { return postgres.SetLSN(ctx, tx, meta, "m1", 0x16B3748) },
					func() error { return postgres.SetLSN(ctx, tx, meta, "m1", 0xFFFFFFFF0) },
					func() error { return postgres.SetLSN(ctx, tx, meta, "m2", 7) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m1", tbl, 0, 10) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m1", tbl, 3, 5) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m1", tbl, 3, 6) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m1", other, 0, 1) },
					func() error { return postgres.MarkPartitionDone(ctx, tx, meta, "m2", tbl, 1, 2) },
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
			if lsn, ok, err := postgres.LastLSN(ctx, conn, meta, "m1"); err != nil || !ok || lsn != 0xFFFFFFFF0 {
				t.Errorf("LastLSN = %X, %v, %v; want FFFFFFFF0", lsn, ok, err)
			}
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
			if _, ok, err := postgres.LastLSN(ctx, conn, meta, "m1"); err != nil || ok {
				t.Errorf("LastLSN after ClearMirror: ok=%v err=%v", ok, err)
			}
			if lsn, ok, err := postgres.LastLSN(ctx, conn, meta, "m2"); err != nil || !ok || lsn != 7 {
				t.Errorf("LastLSN of the other mirror = %X, %v, %v; want 7", lsn, ok, err)
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
				return postgres.MarkPartitionDone(ctx, tx, meta, "m3", dotted, 5, 1)
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
