package postgres_test

import (
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

func TestReadPartition(t *testing.T) {
	ctx := testCtx(t)
	src := connect(t, srcCluster.NewDB(t))
	mustExec(t, src, `CREATE TABLE r (id int PRIMARY KEY, v text, n numeric);
		INSERT INTO r SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'v' || g END, g / 7.0 FROM generate_series(1, 2500) g`)
	tx, err := postgres.BeginSnapshot(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var batches, nulls int
	var reported int64
	sum := 0
	n, err := postgres.ReadPartition(ctx, src, connectors.TableName{Schema: "public", Name: "r"}, []string{"id", "v", "n"},
		postgres.Partition{StartPage: 0, EndPage: -1}, 1000, func(rows [][]connectors.Value) error {
			batches++
			for _, row := range rows {
				if len(row) != 3 || row[0].Kind != connectors.Binary || len(row[0].Data) != 4 {
					t.Fatalf("row %v", row)
				}
				id := int(int32(binary.BigEndian.Uint32(row[0].Data)))
				sum += id
				if row[1].Kind == connectors.Null {
					nulls++
					if id%3 != 0 {
						t.Fatalf("row %d: v is NULL", id)
					}
				} else if string(row[1].Data) != "v"+strconv.Itoa(id) {
					t.Fatalf("row %d: v = %q", id, row[1].Data)
				}
			}
			return nil
		}, func(rows int64) {
			// Called once per row, in order.
			if rows != reported+1 {
				t.Errorf("progress %d after %d", rows, reported)
			}
			reported = rows
		})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2500 || batches != 3 || nulls != 833 || sum != 2500*2501/2 {
		t.Fatalf("read %d rows in %d batches, %d NULLs, id sum %d", n, batches, nulls, sum)
	}
	if reported != n {
		t.Fatalf("progress reported %d rows, read %d", reported, n)
	}
}
