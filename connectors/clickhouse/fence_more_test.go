package clickhouse_test

import (
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

// Forgetting a load (ForgetLoad, of a table and of the whole mirror) under
// a stale epoch is refused and forgets nothing; a stale forgetting that
// slipped past its check deletes no position a later epoch recorded; the
// current epoch's forgets the partitions, and with the zero name the
// position, and keeps the epochs.
func TestFenceForgetLoad(t *testing.T) {
	ctx := testCtx(t)
	r := newFenceRig(t)
	conn, db, stale, owner, users, l := r.conn, r.db, r.stale, r.owner, r.users, r.l
	load(t, l, users, 0, 10, user(t, 1, "a"))
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	pos := connectors.Position("0000000000000100")
	if err := clickhouse.SetPositionAt(ctx, conn, db, "m", pos, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil { // records pos again under 2
		t.Fatal(err)
	}
	applied := func(when string, want connectors.Position) {
		t.Helper()
		if got, err := owner.Applied(ctx); err != nil || got != want {
			t.Fatalf("%s: Applied = %q, %v; want %q", when, got, err, want)
		}
	}

	wantFenced(t, "stale ForgetLoad of a table", stale.ForgetLoad(ctx, users.Source), 1, 2)
	loaded(t, owner, users.Source, map[int]int64{0: 1})
	wantFenced(t, "stale ForgetLoad of the mirror", stale.ForgetLoad(ctx, connectors.TableName{}), 1, 2)
	loaded(t, owner, users.Source, map[int]int64{0: 1})
	applied("after the stale ForgetLoads", pos)

	// What a stale ForgetLoad of the mirror deletes should it slip past
	// its check (a claim in between): its epoch's positions, not the new
	// owner's.
	if err := clickhouse.ClearMirrorUpTo(ctx, conn, db, "m", 1); err != nil {
		t.Fatal(err)
	}
	applied("after a stale clear that slipped past its check", pos)

	if err := owner.ForgetLoad(ctx, users.Source); err != nil {
		t.Fatalf("the current epoch's ForgetLoad of a table: %v", err)
	}
	loaded(t, owner, users.Source, map[int]int64{})
	load(t, l, users, 0, 10, user(t, 1, "a"))
	if err := owner.ForgetLoad(ctx, connectors.TableName{}); err != nil {
		t.Fatalf("the current epoch's ForgetLoad of the mirror: %v", err)
	}
	loaded(t, owner, users.Source, map[int]int64{})
	applied("after the current epoch's ForgetLoad of the mirror", "")
	wantEpoch(t, conn, db, 2)
}

// Removing a table from the mirror (RemoveTable, ALTER MIRROR ... DROP
// TABLE) under a stale epoch is refused and changes nothing: the table,
// its partitions and its shadow stay; the current epoch's removes them.
func TestFenceRemoveTable(t *testing.T) {
	ctx := testCtx(t)
	r := newFenceRig(t)
	conn, stale, owner, users, l := r.conn, r.stale, r.owner, r.users, r.l
	load(t, l, users, 0, 10, user(t, 1, "live"))
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	shadow, err := stale.CreateShadow(ctx, users, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}

	wantFenced(t, "stale RemoveTable", stale.RemoveTable(ctx, users.Source, users.Dest, true), 1, 2)
	for _, tbl := range []connectors.TableName{users.Dest, shadow} {
		if exists, err := owner.TableExists(ctx, tbl); err != nil || !exists {
			t.Fatalf("%s after the stale RemoveTable: exists %v, %v; want it kept", tbl, exists, err)
		}
	}
	if n := countFinal(t, conn, users.Dest); n != 1 {
		t.Fatalf("users has %d rows after the stale RemoveTable, want 1", n)
	}
	loaded(t, owner, users.Source, map[int]int64{0: 1})
	if got, err := owner.Shadows(ctx); err != nil || got[users.Dest] != shadow {
		t.Fatalf("Shadows after the stale RemoveTable = %v, %v; want %s", got, err, shadow)
	}

	if err := owner.RemoveTable(ctx, users.Source, users.Dest, true); err != nil {
		t.Fatalf("the current epoch's RemoveTable: %v", err)
	}
	for _, tbl := range []connectors.TableName{users.Dest, shadow} {
		if exists, err := owner.TableExists(ctx, tbl); err != nil || exists {
			t.Fatalf("%s after RemoveTable: exists %v, %v; want it dropped", tbl, exists, err)
		}
	}
	loaded(t, owner, users.Source, map[int]int64{})
	if got, err := owner.Shadows(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Shadows after RemoveTable = %v, %v; want none", got, err)
	}
}
