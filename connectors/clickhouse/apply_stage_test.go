package clickhouse_test

import (
	"errors"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// A transaction sent before its commit (connectors.LateVersions): its
// changes, without version, go to a stage table window by window (two keys
// a window here), a key in several windows keeping its last change; at
// Commit, after SetVersion, the table gets one row per key with the
// commit's version and the stage is gone. A rollback drops the stage and
// leaves the table as it was; a change whose values must be read from the
// table (a delete by key) abandons the early stream; a stage a crash left
// is dropped by the next applier.
func TestApplierStagesLateVersions(t *testing.T) {
	ctx := testCtx(t)
	conn, db, dt, info := setup(t, itemsSchema())
	newApplier := func() *clickhouse.Applier {
		t.Helper()
		a, err := clickhouse.NewApplier(ctx, conn, info, db, "m", []connectors.DestTable{dt}, nil)
		if err != nil {
			t.Fatal(err)
		}
		clickhouse.SetWindow(a, 2, 0)
		return a
	}
	a := newApplier()
	final := func() []string {
		return query(t, conn, "SELECT id, name, body, qty, _sluice_is_deleted, _sluice_version FROM "+db+".items FINAL")
	}
	stages := func() []string {
		return query(t, conn, "SELECT name FROM system.tables WHERE database = '"+db+"' AND name LIKE 'items_sluice_stage%'")
	}
	ch := func(kind connectors.ChangeKind, version uint64, newRow, old []connectors.Value) connectors.Change {
		return connectors.Change{Kind: kind, Table: itemsSource, New: newRow, Old: old, Version: version}
	}
	apply(t, a, 100, ch(connectors.Insert, 90, row(t, 1, "one", "b1", 1), nil), ch(connectors.Insert, 90, row(t, 2, "two", "b2", 2), nil))
	before := final()

	// Key 1 in the first and third windows, key 3 in the second and third.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	late := []connectors.Change{
		ch(connectors.Update, 0, row(t, 1, "one'", "b1'", 10), nil),
		ch(connectors.Insert, 0, row(t, 3, "three", "b3", 3), nil),
		ch(connectors.Insert, 0, row(t, 4, "four", "b4", 4), nil),
		ch(connectors.Update, 0, row(t, 2, "two'", "b2'", 20), nil),
		ch(connectors.Update, 0, row(t, 1, "one''", "b1''", 100), nil),
		ch(connectors.Update, 0, row(t, 3, "three'", "b3'", 30), nil),
	}
	for _, c := range late {
		if err := a.Add(ctx, []connectors.Change{c}); err != nil {
			t.Fatal(err)
		}
	}
	if got := stages(); len(got) != 1 || got[0] != "name=items_sluice_stage" {
		t.Fatalf("stage tables while the transaction is open: %q", got)
	}
	equalRows(t, "the table while the transaction is open", final(), before)
	a.SetVersion(500)
	if _, err := a.Commit(ctx, postgres.LSNPosition(600)); err != nil {
		t.Fatal(err)
	}
	equalRows(t, "after the commit", final(), []string{
		"id=1 name=one'' body=b1'' qty=100 _sluice_is_deleted=0 _sluice_version=500",
		"id=2 name=two' body=b2' qty=20 _sluice_is_deleted=0 _sluice_version=500",
		"id=3 name=three' body=b3' qty=30 _sluice_is_deleted=0 _sluice_version=500",
		"id=4 name=four body=b4 qty=4 _sluice_is_deleted=0 _sluice_version=500",
	})
	// One row per key moved in (the stage's FINAL), not one per window: two
	// rows of a key with the same version would leave the winner to chance.
	equalRows(t, "rows of the commit's version, without FINAL",
		query(t, conn, "SELECT id, qty FROM "+db+".items WHERE _sluice_version = 500"),
		[]string{"id=1 qty=100", "id=2 qty=20", "id=3 qty=30", "id=4 qty=4"})
	if got := stages(); len(got) != 0 {
		t.Fatalf("stage tables after the commit: %q", got)
	}
	committed := final()

	// Rolled back on the source.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 5; id++ {
		if err := a.Add(ctx, []connectors.Change{ch(connectors.Update, 0, row(t, id, "gone", "gone", -1), nil)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(stages()) != 1 {
		t.Fatal("no stage while the transaction is open")
	}
	if err := a.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stages(); len(got) != 0 {
		t.Fatalf("stage tables after the rollback: %q", got)
	}
	equalRows(t, "after the rollback", final(), committed)

	// A delete by key needs the row's values from the table: abandoned.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	err := a.Add(ctx, []connectors.Change{ch(connectors.Delete, 0, nil, keyOnly(t, 1)), ch(connectors.Delete, 0, nil, keyOnly(t, 2))})
	if !errors.Is(err, connectors.ErrEarlyAbandoned) {
		t.Fatalf("a staged delete by key: %v, want ErrEarlyAbandoned", err)
	}
	if err := a.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Mixing versioned and unversioned changes is refused.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	err = a.Add(ctx, []connectors.Change{ch(connectors.Update, 700, row(t, 1, "x", "x", 1), nil), ch(connectors.Update, 0, row(t, 2, "y", "y", 2), nil)})
	if err == nil || errors.Is(err, connectors.ErrEarlyAbandoned) {
		t.Fatalf("a change without version after one with a version: %v", err)
	}
	if err := a.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	equalRows(t, "after the refused transactions", final(), committed)

	// A crash with a stage written: the next applier drops it.
	if _, err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 3; id++ {
		if err := a.Add(ctx, []connectors.Change{ch(connectors.Update, 0, row(t, id, "crash", "crash", -1), nil)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(stages()) != 1 {
		t.Fatal("no stage before the crash")
	}
	newApplier()
	if got := stages(); len(got) != 0 {
		t.Fatalf("stage tables a new applier left after a crash: %q", got)
	}
	equalRows(t, "after the crash", final(), committed)
}
