package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

// wantFenced fails unless err is a *connectors.FencedError of epoch
// superseded by recorded.
func wantFenced(t *testing.T, what string, err error, epoch, recorded int64) {
	t.Helper()
	var fe *connectors.FencedError
	if !errors.Is(err, connectors.ErrFenced) || !errors.As(err, &fe) || fe.Epoch != epoch || fe.Recorded != recorded {
		t.Fatalf("%s = %v; want a FencedError %d < %d", what, err, epoch, recorded)
	}
}

// fenceRig is what the fencing tests of a table share: a database, a
// stale and an owning Destination of mirror "m" (neither claimed yet), the
// owner's users table made, and a loader of the owner's (closed when the
// test ends).
type fenceRig struct {
	conn         driver.Conn
	db           string
	stale, owner *clickhouse.Destination
	users        connectors.DestTable
	l            connectors.Loader
}

func newFenceRig(t *testing.T) fenceRig {
	t.Helper()
	ctx := testCtx(t)
	var r fenceRig
	r.conn, r.db = newDB(t)
	r.stale, r.owner = openDest(t, r.db, "m"), openDest(t, r.db, "m")
	r.users = usersTable(r.db, "users")
	if err := r.owner.CreateTable(ctx, r.users); err != nil {
		t.Fatal(err)
	}
	l, err := r.owner.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	r.l = l
	return r
}

// A partition of a load planned under a lease epoch a later claim
// superseded is refused (ErrFenced): before its rows when the claim came
// first, before the next insert it opens when the claim came during its
// load, and before its done mark in any case; a partition of the current
// epoch, or of none (a job queued by an older Sluice), is loaded.
func TestFenceLoadPartitions(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	owner, claim := openDest(t, db, "m"), openDest(t, db, "m")
	users := usersTable(db, "users")
	if err := owner.CreateTable(ctx, users); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	lc, err := owner.OpenLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(context.Background())
	l := lc.(*clickhouse.Loader)
	rows := func(first, n int) [][]connectors.Value {
		var out [][]connectors.Value
		for i := range n {
			out = append(out, user(t, int32(first+i), fmt.Sprint("u", first+i)))
		}
		return out
	}

	// Claimed before: nothing read, nothing written.
	_, err = l.Load(ctx, rowsReader(t, users.Source, rows(1, 10)...), connectors.LoadJob{Table: users, Index: 0, Partition: part(0),
		Version: 5, Epoch: 1})
	wantFenced(t, "Load at epoch 1 after Fence(2)", err, 1, 2)
	if n := countFinal(t, conn, users.Dest); n != 0 {
		t.Fatalf("users has %d rows after a stale partition, want none", n)
	}
	loaded(t, owner, users.Source, map[int]int64{})

	// Claimed while the partition loads, in inserts of 1000 rows: the
	// insert open then ends (its rows converge, fence.go), the next is
	// not opened, and the partition is not recorded done.
	clickhouse.SetLoadLimits(l, 100, 1<<20, 1000, time.Minute)
	reader := chunkReader(rows(1, 2500), 100, func(n int) error {
		if n == 500 {
			_, err := claim.Fence(ctx, 3)
			return err
		}
		return nil
	})
	_, err = l.Load(ctx, reader, connectors.LoadJob{Table: users, Index: 0, Partition: part(0), Version: 5, Epoch: 2})
	wantFenced(t, "Load at epoch 2 claimed by 3 meanwhile", err, 2, 3)
	if n := countFinal(t, conn, users.Dest); n != 1000 {
		t.Fatalf("users has %d rows after a partition claimed during its first insert, want that insert's 1000", n)
	}
	loaded(t, owner, users.Source, map[int]int64{})

	// Claimed after its last insert opened: the done mark is refused.
	clickhouse.SetLoadLimits(l, 100, 1<<20, 1_000_000, time.Minute)
	reader = chunkReader(rows(1, 300), 100, func(n int) error {
		if n == 300 {
			_, err := claim.Fence(ctx, 4)
			return err
		}
		return nil
	})
	_, err = l.Load(ctx, reader, connectors.LoadJob{Table: users, Index: 0, Partition: part(0), Version: 5, Epoch: 3})
	wantFenced(t, "Load at epoch 3 claimed by 4 before its done mark", err, 3, 4)
	loaded(t, owner, users.Source, map[int]int64{})

	// The current epoch's partition, and one of no epoch, are loaded.
	for i, epoch := range []int64{4, 0} {
		n, err := l.Load(ctx, rowsReader(t, users.Source, rows(3001+10*i, 10)...), connectors.LoadJob{Table: users, Index: 1 + i,
			Partition: part(1 + i), Version: 5, Epoch: epoch})
		if err != nil || n != 10 {
			t.Fatalf("Load at epoch %d = %d, %v; want 10 rows", epoch, n, err)
		}
	}
	loaded(t, owner, users.Source, map[int]int64{1: 10, 2: 10})
	if n := countFinal(t, conn, users.Dest); n != 1020 {
		t.Fatalf("users has %d rows, want 1020", n)
	}
}

// A claimed destination whose epoch a later claim superseded makes no
// shadow table and swaps nothing in (ErrFenced, nothing changed); the
// new owner's shadow and swap go through. A claim that comes after the
// swap's first check stops it before the statement that puts the shadow
// in.
func TestFenceShadowsAndSwap(t *testing.T) {
	ctx := testCtx(t)
	r := newFenceRig(t)
	conn, db, stale, owner, users, l := r.conn, r.db, r.stale, r.owner, r.users, r.l
	load(t, l, users, 0, 10, user(t, 1, "live"), user(t, 2, "live"))
	load(t, l, users, 1, 25, user(t, 3, "newer than the stale copy"))
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// The stale node made its shadow and loaded it before the claim.
	staleShadow, err := stale.CreateShadow(ctx, users, nil)
	if err != nil {
		t.Fatal(err)
	}
	sh := users
	sh.Dest = staleShadow
	load(t, l, sh, 0, 20, user(t, 1, "stale copy"))
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	tables := withoutMeta(tablesOf(t, conn, db))

	other := usersTable(db, "other")
	if err := owner.CreateTable(ctx, other); err != nil {
		t.Fatal(err)
	}
	_, err = stale.CreateShadow(ctx, other, nil)
	wantFenced(t, "CreateShadow at epoch 1 after Fence(2)", err, 1, 2)
	_, err = stale.SwapIn(ctx, []connectors.Swap{{Table: users, NewerThan: 20}})
	wantFenced(t, "SwapIn at epoch 1 after Fence(2)", err, 1, 2)
	want := append(slices.Clone(tables), "other")
	slices.Sort(want)
	if got := withoutMeta(tablesOf(t, conn, db)); !slices.Equal(got, want) {
		t.Fatalf("tables after the stale node's shadow and swap: %q, want %q", got, want)
	}
	liveRows := []string{"1 live 10 0", "2 live 10 0", "3 newer than the stale copy 25 0"}
	if got := finalRows(t, conn, users.Dest); !slices.Equal(got, liveRows) {
		t.Fatalf("users after the stale swap: %q, want %q", got, liveRows)
	}
	// Not even the live table's newer rows were carried into its shadow.
	if got, want := finalRows(t, conn, staleShadow), []string{"1 stale copy 20 0"}; !slices.Equal(got, want) {
		t.Fatalf("the stale shadow after the stale swap: %q, want %q", got, want)
	}
	if got, err := owner.Shadows(ctx); err != nil || len(got) != 1 || got[users.Dest] != staleShadow {
		t.Fatalf("Shadows after the stale swap = %v, %v; want only %s", got, err, staleShadow)
	}

	// A claim between the swap's first check and its statement: the
	// check before the statement refuses it, the tables stay.
	checks := 0
	err = clickhouse.SwapTablesChecked(ctx, conn, oldServer(t), db, "m", []connectors.TableName{users.Dest}, nil,
		func(context.Context) error {
			if checks++; checks > 1 {
				return &connectors.FencedError{Mirror: "m", Epoch: 2, Recorded: 3}
			}
			return nil
		})
	wantFenced(t, "SwapTables claimed after its first check", err, 2, 3)
	if got := finalRows(t, conn, users.Dest); !slices.Equal(got, liveRows) {
		t.Fatalf("users after the swap refused before its statement: %q, want %q", got, liveRows)
	}
	if got, err := owner.Shadows(ctx); err != nil || got[users.Dest] != staleShadow {
		t.Fatalf("Shadows after the swap refused before its statement = %v, %v; want %s", got, err, staleShadow)
	}

	// The new owner's shadow and swap.
	shadow, err := owner.CreateShadow(ctx, users, nil)
	if err != nil {
		t.Fatal(err)
	}
	sh.Dest = shadow
	load(t, l, sh, 0, 30, user(t, 1, "owner's copy"), user(t, 2, "owner's copy"))
	if _, err := owner.SwapIn(ctx, []connectors.Swap{{Table: users, NewerThan: 30}}); err != nil {
		t.Fatalf("SwapIn at epoch 2: %v", err)
	}
	if got, want := finalRows(t, conn, users.Dest), []string{"1 owner's copy 30 0", "2 owner's copy 30 0"}; !slices.Equal(got, want) {
		t.Fatalf("users after the owner's swap: %q, want %q", got, want)
	}
	if got, err := owner.Shadows(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Shadows after the owner's swap = %v, %v", got, err)
	}
}
