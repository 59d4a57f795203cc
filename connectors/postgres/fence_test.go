package postgres_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// insertUser is an insert into users (id, v).
func insertUser(id int32, v string) connectors.Change {
	return connectors.Change{Kind: connectors.Insert, Table: publicTable("users"),
		New: []connectors.Value{{Kind: connectors.Binary, Data: binary.BigEndian.AppendUint32(nil, uint32(id))},
			{Kind: connectors.Binary, Data: []byte(v)}}}
}

// TestFence: an applier fenced at epoch 1 applies nothing once epoch 2
// claimed the destination (a fresh transaction is refused with ErrFenced;
// one it held open, as a frozen node would, is ended by the claim), the
// position does not move back, a lower epoch's claim is refused and the
// same epoch's is accepted, and a full resync's ForgetLoad keeps the
// epoch.
func TestFence(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	dt := connectors.DestTable{Source: publicTable("users"), Dest: publicTable("users"), Schema: usersSchema("users")}
	mustExec(t, conn, `CREATE TABLE users (id int PRIMARY KEY, v text)`)

	stale := openDest(t, url, "", "m")  // the node that will freeze mid-batch
	waking := openDest(t, url, "", "m") // the same node's next transaction
	owner := openDest(t, url, "", "m")  // the node that takes over
	for _, d := range []*postgres.Destination{stale, waking} {
		if _, err := d.Fence(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	applier := func(d *postgres.Destination) connectors.Applier {
		a, err := d.NewApplier(ctx, []connectors.DestTable{dt})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	apply := func(a connectors.Applier, end uint64, cs ...connectors.Change) error {
		if _, err := a.Begin(ctx); err != nil {
			return err
		}
		if err := a.Add(ctx, cs); err != nil {
			return err
		}
		_, err := a.Commit(ctx, postgres.LSNPosition(end))
		return err
	}
	a1, aw := applier(stale), applier(waking)
	if err := apply(a1, 0x100, insertUser(1, "a")); err != nil {
		t.Fatal(err)
	}
	// The stale node's batch in flight: its transaction holds the
	// metadata row.
	if _, err := a1.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a1.Add(ctx, []connectors.Change{insertUser(2, "b")}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ended, err := owner.Fence(ctx, 2)
	if err != nil {
		t.Fatalf("Fence(2) with a stale transaction open: %v", err)
	}
	if len(ended) != 1 || !strings.Contains(ended[0], "sluice-test") {
		t.Errorf("Fence(2) ended %q, want the stale session", ended)
	}
	t.Logf("Fence(2) took %s and ended %q", time.Since(start).Round(time.Millisecond), ended)
	if _, err := a1.Commit(ctx, postgres.LSNPosition(0x200)); err == nil {
		t.Error("the stale transaction committed after the fence")
	}
	// The stale node's next transaction: refused.
	err = apply(aw, 0x300, insertUser(3, "c"))
	var fe *connectors.FencedError
	if !errors.Is(err, connectors.ErrFenced) || !errors.As(err, &fe) || fe.Epoch != 1 || fe.Recorded != 2 {
		t.Fatalf("apply at epoch 1 after Fence(2) = %v, want a FencedError 1 < 2", err)
	}
	if pos, err := owner.Applied(ctx); err != nil || pos != postgres.LSNPosition(0x100) {
		t.Fatalf("Applied = %q, %v; want %q", pos, err, postgres.LSNPosition(0x100))
	}
	wantRows(t, conn, "SELECT string_agg(id::text, ',' ORDER BY id) FROM users", "1")
	// The owner applies; the stale node's claim is refused, the owner's
	// again accepted.
	if err := apply(applier(owner), 0x200, insertUser(2, "b2")); err != nil {
		t.Fatal(err)
	}
	if _, err := waking.Fence(ctx, 1); !errors.Is(err, connectors.ErrFenced) {
		t.Errorf("Fence(1) after Fence(2) = %v, want ErrFenced", err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Errorf("Fence(2) again: %v", err)
	}
	if err := apply(aw, 0x400, insertUser(4, "d")); !errors.Is(err, connectors.ErrFenced) {
		t.Errorf("apply at epoch 1 = %v, want ErrFenced", err)
	}
	if pos, err := owner.Applied(ctx); err != nil || pos != postgres.LSNPosition(0x200) {
		t.Fatalf("Applied = %q, %v; want %q", pos, err, postgres.LSNPosition(0x200))
	}
	wantRows(t, conn, "SELECT string_agg(id || v, ',' ORDER BY id) FROM users", "1a,2b2")
	// A full resync forgets the position, not the epoch.
	if err := owner.ForgetLoad(ctx, connectors.TableName{}); err != nil {
		t.Fatal(err)
	}
	if pos, err := owner.Applied(ctx); err != nil || pos != "" {
		t.Errorf("Applied after ForgetLoad = %q, %v; want none", pos, err)
	}
	if e, err := postgres.Epoch(ctx, conn, "", "m"); err != nil || e != 2 {
		t.Errorf("epoch after ForgetLoad = %d, %v; want 2", e, err)
	}
}

// TestFenceOldMetadata: metadata an older Sluice made (mirror_state
// without epoch) gains the column, its rows epoch 0, and a fence works.
func TestFenceOldMetadata(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE SCHEMA _sluice;
CREATE TABLE _sluice.mirror_state (mirror text PRIMARY KEY, lsn bigint NOT NULL, position text,
	updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO _sluice.mirror_state (mirror, lsn, position) VALUES ('m', 16, '0000000000000010')`)
	d := openDest(t, url, "", "m")
	if pos, err := d.Applied(ctx); err != nil || pos != postgres.LSNPosition(16) {
		t.Fatalf("Applied = %q, %v", pos, err)
	}
	if e, err := postgres.Epoch(ctx, conn, "", "m"); err != nil || e != 0 {
		t.Errorf("epoch of an old row = %d, %v; want 0", e, err)
	}
	if _, err := d.Fence(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if e, err := postgres.Epoch(ctx, conn, "", "m"); err != nil || e != 3 {
		t.Errorf("epoch = %d, %v; want 3", e, err)
	}
	if pos, err := d.Applied(ctx); err != nil || pos != postgres.LSNPosition(16) {
		t.Errorf("Applied after Fence = %q, %v", pos, err)
	}
}

// TestSourceTakeStream: a stream reading the slot is ended by TakeStream,
// which names its pid, and the slot can be streamed again at once.
func TestSourceTakeStream(t *testing.T) {
	e := newSourceEnv(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := testCtx(t)
	if err := e.src.Prepare(ctx, e.spec, []connectors.TableName{pub("t")}, false); err != nil {
		t.Fatal(err)
	}
	snap, err := e.src.StartMirror(ctx, e.spec)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close()
	st := e.src.(connectors.StreamTaker)
	if ended, err := st.TakeStream(ctx, e.spec); err != nil || ended != nil {
		t.Fatalf("TakeStream of an idle slot = %q, %v", ended, err)
	}
	old, err := e.src.Stream(ctx, e.spec, snap.Position, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(context.Background())
	if _, err := e.src.Stream(ctx, e.spec, snap.Position, nil); !errors.Is(err, connectors.ErrStreamBusy) {
		t.Fatalf("second Stream of an active slot = %v, want ErrStreamBusy", err)
	}
	ended, err := st.TakeStream(ctx, e.spec)
	if err != nil || len(ended) != 1 || !strings.Contains(ended[0], "walsender pid") {
		t.Fatalf("TakeStream = %q, %v", ended, err)
	}
	s, err := e.src.Stream(ctx, e.spec, snap.Position, nil)
	if err != nil {
		t.Fatalf("Stream after TakeStream: %v", err)
	}
	s.Close(context.Background())
}

// A claimed destination whose epoch a later claim superseded writes no
// table resync state and swaps nothing in: the stale node's record and
// swap are refused (ErrFenced), the new owner's go through.
func TestFenceTableStatesAndSwap(t *testing.T) {
	ctx := testCtx(t)
	url := dstCluster.NewDB(t)
	conn := connect(t, url)
	mustExec(t, conn, `CREATE TABLE users (id int PRIMARY KEY, v text); INSERT INTO users VALUES (1, 'live')`)
	dt := connectors.DestTable{Source: publicTable("users"), Dest: publicTable("users"), Schema: usersSchema("users")}
	stale, owner := openDest(t, url, "", "m"), openDest(t, url, "", "m")
	if _, err := stale.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	st := connectors.TableState{Table: dt.Source, Stage: connectors.StageCatchup, Strategy: "swap", Position: postgres.LSNPosition(0x100)}
	if err := stale.PutTableState(ctx, st); err != nil {
		t.Fatalf("the current epoch's table state: %v", err)
	}
	if _, err := stale.CreateShadow(ctx, dt, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}

	st.Position = postgres.LSNPosition(0x200)
	if err := stale.PutTableState(ctx, st); !errors.Is(err, connectors.ErrFenced) {
		t.Fatalf("stale PutTableState = %v, want ErrFenced", err)
	}
	if err := stale.DeleteTableState(ctx, dt.Source); !errors.Is(err, connectors.ErrFenced) {
		t.Fatalf("stale DeleteTableState = %v, want ErrFenced", err)
	}
	states, err := owner.TableStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := states[dt.Source]; got.Position != postgres.LSNPosition(0x100) {
		t.Fatalf("table state after the stale writes: %+v, want the position 0x100 kept", got)
	}
	if _, err := stale.SwapIn(ctx, []connectors.Swap{{Table: dt}}); !errors.Is(err, connectors.ErrFenced) {
		t.Fatalf("stale SwapIn = %v, want ErrFenced", err)
	}
	if shadows, err := owner.Shadows(ctx); err != nil || len(shadows) != 1 {
		t.Fatalf("shadows after the stale swap: %v, %v; want the shadow still there", shadows, err)
	}
	wantRows(t, conn, "SELECT v FROM users", "live")

	if err := owner.PutTableState(ctx, st); err != nil {
		t.Fatalf("the new owner's table state: %v", err)
	}
	if _, err := owner.SwapIn(ctx, []connectors.Swap{{Table: dt}}); err != nil {
		t.Fatalf("the new owner's swap: %v", err)
	}
	wantRows(t, conn, "SELECT count(*)::text FROM users", "0") // the empty shadow is in
}
