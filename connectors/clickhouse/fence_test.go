package clickhouse_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

// TestFence: once epoch 2 claimed the destination, an applier fenced at
// epoch 1 is refused before its batch and before recording its position
// (ErrFenced), a position recorded under epoch 1 afterwards does not move
// the mirror's position, a lower epoch's claim is refused and the same
// epoch's accepted, a full resync's ForgetLoad keeps the epochs, and
// metadata an older Sluice made gains the epoch column.
func TestFence(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	// Metadata an older Sluice made: no epoch column, no epoch table.
	if err := conn.Exec(ctx, "CREATE TABLE `"+db+"`._sluice_mirror_state (mirror String, lsn UInt64, updated_at DateTime, "+
		"position String) ENGINE = ReplacingMergeTree(lsn) ORDER BY mirror"); err != nil {
		t.Fatal(err)
	}
	stale, owner := openDest(t, db, "m"), openDest(t, db, "m")
	users := usersTable(db, "users")
	if err := owner.CreateTable(ctx, users); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	applier := func(d *clickhouse.Destination) connectors.Applier {
		a, err := d.NewApplier(ctx, []connectors.DestTable{users})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ins := func(v uint64, id int32, name string) connectors.Change {
		return connectors.Change{Kind: connectors.Insert, Table: users.Source, New: user(t, id, name), Version: v}
	}
	apply := func(a connectors.Applier, end connectors.Position, cs ...connectors.Change) error {
		if _, err := a.Begin(ctx); err != nil {
			return err
		}
		if err := a.Add(ctx, cs); err != nil {
			return err
		}
		_, err := a.Commit(ctx, end)
		return err
	}
	a1 := applier(stale)
	if err := apply(a1, "0000000000000010", ins(0x10, 1, "a")); err != nil {
		t.Fatal(err)
	}
	// The stale node's batch in flight when epoch 2 claims the mirror:
	// refused before its position is recorded.
	if _, err := a1.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a1.Add(ctx, []connectors.Change{ins(0x20, 2, "b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, err := a1.Commit(ctx, "0000000000000020")
	var fe *connectors.FencedError
	if !errors.As(err, &fe) || !errors.Is(err, connectors.ErrFenced) || fe.Epoch != 1 || fe.Recorded != 2 {
		t.Fatalf("Commit at epoch 1 after Fence(2) = %v, want a FencedError 1 < 2", err)
	}
	applied(t, owner, "0000000000000010")
	// Its next batch is refused before it writes anything.
	if err := apply(a1, "0000000000000030", ins(0x30, 3, "c")); !errors.Is(err, connectors.ErrFenced) {
		t.Fatalf("apply at epoch 1 = %v, want ErrFenced", err)
	}
	// The refused Commit had written its rows (id 2, version 0x20) before
	// its check: rows the owner's replay writes the same; the batch
	// refused at Begin wrote nothing (no id 3).
	if n := countFinal(t, conn, users.Dest); n != 2 {
		t.Errorf("%d rows after the stale batches, want 2", n)
	}
	// A stale position written after the fence (one that slipped past
	// the check) does not count: the highest epoch's does. (Until a merge:
	// one keeps the row of the highest LSN, here an artificial stale one
	// ahead of rows never written, so merges wait for these checks.)
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES `"+db+"`._sluice_mirror_state"); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.SetPositionAt(ctx, conn, db, "m", "0000000000000099", 1); err != nil {
		t.Fatal(err)
	}
	applied(t, owner, "0000000000000010")
	if err := apply(applier(owner), "0000000000000020", ins(0x20, 2, "b")); err != nil {
		t.Fatal(err)
	}
	applied(t, owner, "0000000000000020")
	if _, err := stale.Fence(ctx, 1); !errors.Is(err, connectors.ErrFenced) {
		t.Errorf("Fence(1) after Fence(2) = %v, want ErrFenced", err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Errorf("Fence(2) again: %v", err)
	}
	applied(t, owner, "0000000000000020")
	// A full resync forgets the position, not the epochs; DROP MIRROR
	// forgets both. (Their mutations need merges.)
	if err := conn.Exec(ctx, "SYSTEM START MERGES `"+db+"`._sluice_mirror_state"); err != nil {
		t.Fatal(err)
	}
	if err := owner.ForgetLoad(ctx, connectors.TableName{}); err != nil {
		t.Fatal(err)
	}
	applied(t, owner, "")
	wantEpoch(t, conn, db, 2)
	p, err := owner.Teardown(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantEpoch(t, conn, db, 0)
}

// wantEpoch checks the highest epoch recorded for mirror m.
func wantEpoch(t *testing.T, conn driver.Conn, db string, want int64) {
	t.Helper()
	if e, err := clickhouse.Epoch(context.Background(), conn, db, "m"); err != nil || e != want {
		t.Errorf("epoch = %d, %v; want %d", e, err, want)
	}
}

// A merge of the mirror state keeps a row of the highest epoch for
// positions that are not Postgres LSNs (a MySQL source's): a stale node's
// position written after the new owner's never outlives it.
func TestFenceMergeKeepsEpoch(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	if err := clickhouse.EnsureMetadata(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		pos   connectors.Position
		epoch int64
	}{{"0000000000000001binlog.000001", 1}, {"0000000000000002binlog.000001", 2}, {"0000000000000009binlog.000001", 1}} {
		if err := clickhouse.SetPositionAt(ctx, conn, db, "m", w.pos, w.epoch); err != nil {
			t.Fatal(err)
		}
	}
	want := connectors.Position("0000000000000002binlog.000001")
	for _, when := range []string{"before the merge", "after the merge"} {
		if pos, _, err := clickhouse.LastPosition(ctx, conn, db, "m"); err != nil || pos != want {
			t.Errorf("%s: LastPosition = %q, %v; want %q", when, pos, err, want)
		}
		if err := conn.Exec(ctx, "OPTIMIZE TABLE `"+db+"`._sluice_mirror_state FINAL"); err != nil {
			t.Fatal(err)
		}
	}
}
