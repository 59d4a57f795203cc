package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
	"github.com/sluicedb/sluice/sqlerr"
)

func TestSourceMirrorChecks(t *testing.T) {
	e := newSourceEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := testCtx(t)
	mc := e.src.(connectors.MirrorChecker)
	if err := mc.CanStream(ctx); err != nil {
		t.Fatalf("CanStream on a logical cluster: %v", err)
	}
	if err := mc.NamesFree(ctx, e.spec); err != nil {
		t.Fatalf("NamesFree before anything exists: %v", err)
	}
	if err := e.src.Prepare(ctx, e.spec, []connectors.TableName{pub("t")}, false); err != nil {
		t.Fatal(err)
	}
	var se *sqlerr.Error
	if err := mc.NamesFree(ctx, e.spec); !errors.As(err, &se) || se.Code != "42710" {
		t.Fatalf("NamesFree with the publication taken: %v", err)
	}
	if err := e.src.Teardown(ctx, e.spec); err != nil {
		t.Fatal(err)
	}

	// Lags: none before the slot exists, then a measure of it.
	lr := e.src.(connectors.LagReporter)
	lags, err := lr.StreamLags(ctx, []connectors.StreamSpec{e.spec})
	if err != nil || len(lags) != 0 {
		t.Fatalf("StreamLags without a slot = %v, %v", lags, err)
	}
	snap, err := e.src.StartMirror(ctx, e.spec)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close()
	if err := mc.NamesFree(ctx, connectors.StreamSpec{Publication: "other", Slot: e.spec.Slot}); !errors.As(err, &se) {
		t.Fatalf("NamesFree with the slot taken: %v", err)
	}
	mustExec(t, e.conn, `INSERT INTO t SELECT generate_series(1, 1000)`)
	// pg_current_wal_lsn is where WAL is written to: without synchronous
	// commit (the test clusters), the WAL writer gets there within moments.
	var l connectors.StreamLag
	var ok bool
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lags, err = lr.StreamLags(ctx, []connectors.StreamSpec{e.spec, {Mirror: "gone", Slot: "no_such_slot"}})
		if err != nil {
			t.Fatal(err)
		}
		l, ok = lags["m"]
		if !ok || l.Bytes == nil || *l.Bytes > 0 || time.Now().After(deadline) {
			break
		}
	}
	if !ok || len(lags) != 1 || l.Bytes == nil || *l.Bytes <= 0 || l.Status == nil || l.Lost {
		t.Fatalf("StreamLags = %+v", lags)
	}
	if err := e.src.Teardown(ctx, e.spec); err != nil {
		t.Fatal(err)
	}
}

func TestSourceErrorsAreTheSeams(t *testing.T) {
	if !errors.Is(postgres.ErrDropUncertain, connectors.ErrTeardownUncertain) {
		t.Error("ErrDropUncertain is not connectors.ErrTeardownUncertain")
	}
	err := error(&postgres.UnsupportedTypeError{Table: pub("t"), Column: "c", Type: "tsvector"})
	if !errors.Is(err, connectors.ErrUnsupportedType) {
		t.Error("UnsupportedTypeError does not match connectors.ErrUnsupportedType")
	}
}
