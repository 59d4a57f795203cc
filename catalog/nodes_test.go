package catalog_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// Stream leases fence the flows' catalog writes: a RecordSync (or a phase
// change) made under a lease another node has since taken over is refused
// with ErrLeaseLost and writes nothing; the holder's goes through. A live
// lease is not taken by another node, an expired one is; a reserved free
// lease only by a statement; renewal reports a lost lease and a release
// request; RegisterNode frees the leases of the node's earlier run.
func TestLeaseFencing(t *testing.T) {
	s, url := oneTableMirror(t)
	ctx := testCtx(t)
	for _, n := range []string{"n1", "n2"} {
		if err := s.RegisterNode(ctx, n, "127.0.0.1:1", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	conn := connect(t, url)
	position := func() string {
		var p string
		if err := conn.QueryRow(ctx, `SELECT coalesce(position, '') FROM sluice_status.mirrors WHERE name = 'm'`).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	e1, ok, err := s.AcquireLease(ctx, "m", "n1", time.Second, false)
	if err != nil || !ok || e1 != 1 {
		t.Fatalf("n1 acquires a free lease: epoch %d, %v, %v", e1, ok, err)
	}
	if _, ok, err := s.AcquireLease(ctx, "m", "n2", time.Second, true); err != nil || ok {
		t.Fatalf("n2 took n1's live lease: %v %v", ok, err)
	}
	old := catalog.WithLease(ctx, catalog.Lease{Node: "n1", Epoch: e1})
	if err := s.RecordSync(old, "m", postgres.LSNPosition(0x100), "0/100", time.Now(), 1, nil); err != nil {
		t.Fatalf("RecordSync under the live lease: %v", err)
	}

	time.Sleep(1100 * time.Millisecond) // n1 stops renewing: its lease expires
	e2, ok, err := s.AcquireLease(ctx, "m", "n2", 5*time.Second, false)
	if err != nil || !ok || e2 != e1+1 {
		t.Fatalf("n2 takes the expired lease: epoch %d, %v, %v", e2, ok, err)
	}
	err = s.RecordSync(old, "m", postgres.LSNPosition(0x200), "0/200", time.Now(), 1, nil)
	if !errors.Is(err, catalog.ErrLeaseLost) {
		t.Fatalf("RecordSync with the stale epoch %d: %v, want ErrLeaseLost", e1, err)
	}
	if err := s.SetPhase(old, "m", catalog.PhaseCDC); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Fatalf("SetPhase with the stale epoch: %v, want ErrLeaseLost", err)
	}
	if got := position(); got != "0/100" {
		t.Fatalf("position after the fenced write: %q, want 0/100", got)
	}
	cur := catalog.WithLease(ctx, catalog.Lease{Node: "n2", Epoch: e2})
	if err := s.RecordSync(cur, "m", postgres.LSNPosition(0x300), "0/300", time.Now(), 1, nil); err != nil || position() != "0/300" {
		t.Fatalf("RecordSync under the new holder's lease: %v, position %s", err, position())
	}
	// A statement's write carries no lease and is not fenced.
	if err := s.SetDesired(ctx, "m", catalog.DesiredRunning); err != nil {
		t.Fatal(err)
	}

	// Renewal: n1's is lost; n2's is kept, with the release request a
	// Stop on another node made.
	got, err := s.RenewLeases(ctx, "n1", time.Second, map[string]int64{"m": e1})
	if err != nil || len(got) != 0 {
		t.Fatalf("n1 renews its lost lease: %v %v", got, err)
	}
	if err := s.RequestRelease(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	got, err = s.RenewLeases(ctx, "n2", 5*time.Second, map[string]int64{"m": e2})
	if err != nil || len(got) != 1 || !got["m"] {
		t.Fatalf("n2 renews, asked to release: %v %v", got, err)
	}
	// Released with a reservation: a node's periodic look skips it, a
	// statement takes it.
	if err := s.ReleaseLease(ctx, "m", catalog.Lease{Node: "n2", Epoch: e2}, 5*time.Second, "test"); err != nil {
		t.Fatal(err)
	}
	if names, err := s.FreeMirrors(ctx); err != nil || len(names) != 0 {
		t.Fatalf("mirrors to run while reserved: %v %v", names, err)
	}
	if _, ok, err := s.AcquireLease(ctx, "m", "n1", time.Second, false); err != nil || ok {
		t.Fatalf("a periodic acquisition took a reserved lease: %v %v", ok, err)
	}
	e3, ok, err := s.AcquireLease(ctx, "m", "n1", time.Minute, true)
	if err != nil || !ok || e3 != e2+1 {
		t.Fatalf("a statement takes the reserved lease: %d %v %v", e3, ok, err)
	}
	var node string
	if err := conn.QueryRow(ctx, `SELECT node FROM sluice_status.mirrors WHERE name = 'm'`).Scan(&node); err != nil || node != "n1" {
		t.Fatalf("mirrors.node: %q %v", node, err)
	}
	// n1 restarts: the leases of its earlier run are free at once.
	if err := s.RegisterNode(ctx, "n1", "127.0.0.1:2", time.Second); err != nil {
		t.Fatal(err)
	}
	if h, err := s.GetLeaseHolder(ctx, "m"); err != nil || h.Node != "" {
		t.Fatalf("lease after n1 registered again: %+v %v", h, err)
	}
	if err := s.StopNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	var statuses string
	if err := conn.QueryRow(ctx, `SELECT string_agg(id || ' ' || address || ' ' || status, ', ' ORDER BY id) FROM sluice_status.nodes`).Scan(&statuses); err != nil ||
		statuses != "n1 127.0.0.1:2 alive, n2 127.0.0.1:1 stopped" {
		t.Fatalf("nodes: %q %v", statuses, err)
	}
}
