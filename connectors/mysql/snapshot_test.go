package mysql_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
)

// TestSnapshotAndPlan takes a mirror's snapshot on MariaDB, checks that its
// position is the binlog's end when it was taken, and reads
// a table planned in key ranges: every row once.
func TestSnapshotAndPlan(t *testing.T) {
	ctx := testCtx(t)
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id bigint PRIMARY KEY, v varchar(10))",
		"INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000", "ANALYZE TABLE t")
	src := openSource(t, db)
	r, err := src.Exec("SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := r.GetString(0, 0)
	offset, _ := r.GetUint(0, 1)

	snap, err := src.StartMirror(ctx, connectors.StreamSpec{Mirror: "m"})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	maria.Exec(t, db, "INSERT INTO t VALUES (1001, 'after')")
	p, err := mysql.DecodePosition(snap.Position)
	if err != nil {
		t.Fatal(err)
	}
	if p.File != file || p.Offset != offset {
		t.Errorf("snapshot at %+v, want %s:%d", p, file, offset)
	}
	if v, _ := p.Version(); v != snap.Version {
		t.Errorf("Version %d, position's %d", snap.Version, v)
	}

	table := connectors.TableName{Schema: db, Name: "t"}
	ts, err := src.Describe(ctx, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts.EstimatedRows < 500 {
		t.Fatalf("estimated rows %d", ts.EstimatedRows)
	}
	plan, err := src.Plan(ctx, table, ts, func(int64) int64 { return 100 })
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Partitions) < 4 {
		t.Errorf("%d partitions: %s", len(plan.Partitions), plan.Partitions)
	}
	reader, err := src.OpenReader(ctx, snap.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)
	seen := map[string]int{}
	var total int64
	for _, part := range plan.Partitions {
		n, err := reader.Read(ctx, table, ts, part, 64, func(rows [][]connectors.Value) error {
			for _, row := range rows {
				seen[string(row[0].Data)]++
			}
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	// The reader's own snapshot is taken after the insert: it reads 1001
	// rows, the stream replays the insert from the mirror's position.
	if total != 1001 || len(seen) != 1001 {
		t.Errorf("read %d rows, %d distinct, want 1001", total, len(seen))
	}
}

// TestReadColumns reads a key and a column of every row, as a destination
// back-filling an added column does.
func TestReadColumns(t *testing.T) {
	ctx := testCtx(t)
	db := newDB(t)
	maria.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY, v varchar(10))",
		"INSERT INTO t VALUES (1, 'a'), (2, NULL), (3, 'c')")
	src := openSource(t, db)
	var got []string
	n, err := src.ReadColumns(ctx, connectors.TableName{Schema: db, Name: "t"}, []string{"id"}, []string{"v"}, 2,
		func(rows [][]connectors.Value) error {
			for _, r := range rows {
				got = append(got, fmt.Sprintf("%x:%c%s", r[0].Data, r[1].Kind, r[1].Data))
			}
			return nil
		})
	if err != nil || n != 3 || strings.Join(got, " ") != "00000001:ba 00000002:n 00000003:bc" {
		t.Errorf("ReadColumns: %d rows %q, %v", n, got, err)
	}
	if _, err := src.ReadColumns(ctx, connectors.TableName{Schema: db, Name: "t"}, []string{"id"}, []string{"nope"}, 2,
		func([][]connectors.Value) error { return nil }); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing column: %v", err)
	}
	if vals, err := src.CurrentValues(ctx, connectors.TableName{Schema: db, Name: "t"}, []string{"v"}); err != nil || len(vals) != 0 {
		t.Errorf("CurrentValues: %v %v", vals, err)
	}
}
