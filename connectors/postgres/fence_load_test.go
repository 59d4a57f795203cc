package postgres_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// userRows are n rows of users (id, v) from first, as binary values.
func userRows(first, n int) [][]connectors.Value {
	rows := make([][]connectors.Value, n)
	for i := range rows {
		id := first + i
		rows[i] = []connectors.Value{{Kind: connectors.Binary, Data: binary.BigEndian.AppendUint32(nil, uint32(id))},
			{Kind: connectors.Binary, Data: []byte(fmt.Sprint("v", id))}}
	}
	return rows
}

// A partition of a load planned under a lease epoch that a later claim
// superseded is refused (ErrFenced) and writes nothing, neither its rows
// nor its done mark, by the fast path (a Postgres snapshot reader) and
// the generic one (values), and also when the claim comes while the
// partition is being copied (the check in the transaction, just before
// the done mark); a partition of the current epoch, or of none (a job
// queued by an older Sluice), is loaded.
func TestFenceLoadPartitions(t *testing.T) {
	ctx := testCtx(t)
	srcURL, dstURL := srcCluster.NewDB(t), dstCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	mustExec(t, src, `CREATE TABLE users (id int PRIMARY KEY, v text); INSERT INTO users SELECT g, 'v' || g FROM generate_series(1, 100) g`)
	users := publicTable("users")
	dt := connectors.DestTable{Source: users, Dest: users, Schema: usersSchema("users")}
	owner := openDest(t, dstURL, "", "m")
	if err := owner.CreateTable(ctx, dt); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	l, err := owner.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	whole := partitionJSON(t, postgres.Partition{Index: 0, StartPage: 0, EndPage: -1})
	fast := func() connectors.PartitionReader {
		r, err := postgres.NewTestSnapshotReader(ctx, connect(t, srcURL), exportedSnapshot(t, srcURL))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(context.Background()) })
		return r
	}
	values := func(first, n int, during func()) fakeReader {
		return fakeReader{read: func(ctx context.Context, _ connectors.TableName, _ *connectors.TableSchema, _ connectors.Partition,
			_ int, fn func([][]connectors.Value) error, _ func(int64)) (int64, error) {
			if err := fn(userRows(first, n)); err != nil {
				return 0, err
			}
			if during != nil {
				during()
			}
			return int64(n), nil
		}}
	}
	nothing := func(when string) {
		t.Helper()
		if n := queryInt64(t, dst, "SELECT count(*) FROM users"); n != 0 {
			t.Errorf("%s: users has %d rows, want none", when, n)
		}
		if n := queryInt64(t, dst, "SELECT count(*) FROM _sluice.snapshot_partitions"); n != 0 {
			t.Errorf("%s: %d partitions recorded done, want none", when, n)
		}
	}
	fenced := func(when string, err error, epoch, recorded int64) {
		t.Helper()
		var fe *connectors.FencedError
		if !errors.Is(err, connectors.ErrFenced) || !errors.As(err, &fe) || fe.Epoch != epoch || fe.Recorded != recorded {
			t.Errorf("%s = %v; want a FencedError %d < %d", when, err, epoch, recorded)
		}
	}

	_, err = l.Load(ctx, fast(), connectors.LoadJob{Table: dt, Index: 0, Partition: whole, Epoch: 1})
	fenced("fast load at epoch 1", err, 1, 2)
	nothing("after the stale fast load")
	_, err = l.Load(ctx, values(1, 10, nil), connectors.LoadJob{Table: dt, Index: 1, Partition: whole, Epoch: 1})
	fenced("values load at epoch 1", err, 1, 2)
	nothing("after the stale values load")

	// The claim of epoch 3 commits while a partition of epoch 2 is copied
	// (its first check passed): the check before the done mark refuses it.
	claim := openDest(t, dstURL, "", "m")
	_, err = l.Load(ctx, values(1, 10, func() {
		if _, err := claim.Fence(ctx, 3); err != nil {
			t.Errorf("Fence(3) during the copy: %v", err)
		}
	}), connectors.LoadJob{Table: dt, Index: 1, Partition: whole, Epoch: 2})
	fenced("values load at epoch 2, claimed by 3 meanwhile", err, 2, 3)
	nothing("after the load overtaken by a claim")

	// The current epoch's partitions, and one of no epoch, are loaded.
	if n, err := l.Load(ctx, fast(), connectors.LoadJob{Table: dt, Index: 0, Partition: whole, Epoch: 3}); err != nil || n != 100 {
		t.Fatalf("fast load at epoch 3 = %d, %v; want 100 rows", n, err)
	}
	if n, err := l.Load(ctx, values(101, 10, nil), connectors.LoadJob{Table: dt, Index: 1, Partition: whole, Epoch: 3}); err != nil || n != 10 {
		t.Fatalf("values load at epoch 3 = %d, %v; want 10 rows", n, err)
	}
	if n, err := l.Load(ctx, values(201, 5, nil), connectors.LoadJob{Table: dt, Index: 2, Partition: whole}); err != nil || n != 5 {
		t.Fatalf("values load without an epoch = %d, %v; want 5 rows", n, err)
	}
	wantRows(t, dst, "SELECT count(*)::text FROM users", "115")
	done, err := owner.Loaded(ctx, users)
	if err != nil || len(done) != 3 || done[0] != 100 || done[1] != 10 || done[2] != 5 {
		t.Errorf("Loaded = %v, %v; want partitions 0, 1 and 2 of 100, 10 and 5 rows", done, err)
	}
}

// A claimed destination whose epoch a later claim superseded makes no
// shadow table, and drops none it recorded (ErrFenced, nothing changed);
// the new owner's shadow is made.
func TestFenceCreateShadow(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE users (id int PRIMARY KEY, v text)`)
	dt := connectors.DestTable{Source: publicTable("users"), Dest: publicTable("users"), Schema: usersSchema("users")}
	stale, owner := openDest(t, url, "", "m"), openDest(t, url, "", "m")
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	first, err := stale.CreateShadow(ctx, dt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, err = stale.CreateShadow(ctx, dt, nil)
	var fe *connectors.FencedError
	if !errors.Is(err, connectors.ErrFenced) || !errors.As(err, &fe) || fe.Epoch != 1 || fe.Recorded != 2 {
		t.Fatalf("CreateShadow at epoch 1 after Fence(2) = %v, want a FencedError 1 < 2", err)
	}
	if got, err := owner.Shadows(ctx); err != nil || len(got) != 1 || got[dt.Dest] != first {
		t.Fatalf("Shadows after the stale CreateShadow = %v, %v; want only %s", got, err, first)
	}
	second, err := owner.CreateShadow(ctx, dt, nil)
	if err != nil {
		t.Fatalf("CreateShadow at epoch 2: %v", err)
	}
	if got, err := owner.Shadows(ctx); err != nil || len(got) != 1 || got[dt.Dest] != second {
		t.Fatalf("Shadows after the owner's CreateShadow = %v, %v; want only %s", got, err, second)
	}
}
