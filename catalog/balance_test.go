package catalog_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
)

// What the nodes read to share the streams out (balance.go): the load of
// the alive nodes and its fair share, the leader, free mirrors and how
// long they have been free, the owners, which stream may be handed over;
// and the node events that acquisitions and releases record.
func TestClusterLoad(t *testing.T) {
	s, url := oneTableMirror(t)
	ctx := testCtx(t)
	conn := connect(t, url)
	for _, name := range []string{"m2", "m3"} {
		err := s.CreateMirror(ctx, catalog.Mirror{Name: name, SourcePeer: "a", DestinationPeer: "b", Options: map[string]string{},
			Publication: "p" + name, Slot: "s" + name, Tables: []catalog.MirrorTable{{Source: "public.t", Destination: "public.t"}}}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"n2", "n1", "n3"} {
		if err := s.RegisterNode(ctx, n, "127.0.0.1:1", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	load, err := s.GetClusterLoad(ctx)
	if err != nil || load.Mirrors != 3 || len(load.Streams) != 3 || load.Leader != "n1" || load.Share() != 1 {
		t.Fatalf("three nodes, three mirrors, no lease: %+v (share %d), %v", load, load.Share(), err)
	}
	e1, ok, err := s.AcquireLease(ctx, "m", "n2", time.Minute, false)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if err := s.MarkNodeStopping(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	load, err = s.GetClusterLoad(ctx)
	if err != nil || len(load.Streams) != 2 || load.Streams["n2"] != 1 || load.Streams["n3"] != 0 || load.Leader != "n2" ||
		load.Share() != 2 {
		t.Fatalf("n1 stopping, n2 holding m: %+v (share %d), %v", load, load.Share(), err)
	}
	if owners, err := s.MirrorOwners(ctx); err != nil || len(owners) != 1 || owners["m"] != "n2" {
		t.Fatalf("owners: %v %v", owners, err)
	}
	free, err := s.FreeMirrors(ctx)
	if err != nil || len(free) != 2 || free[0].Name != "m2" || free[1].Name != "m3" || free[0].FreeFor < 0 || free[0].FreeFor > time.Minute {
		t.Fatalf("free mirrors: %+v %v", free, err)
	}

	// Only a streaming mirror without an error or a resync under way may
	// be handed over.
	candidate := func() string {
		t.Helper()
		name, err := s.HandOverCandidate(ctx, "n2")
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	if c := candidate(); c != "" {
		t.Fatalf("a mirror in SETUP handed over: %q", c)
	}
	if err := s.SetPhase(ctx, "m", catalog.PhaseCDC); err != nil {
		t.Fatal(err)
	}
	if c := candidate(); c != "m" {
		t.Fatalf("the streaming mirror not handed over: %q", c)
	}
	if _, err := conn.Exec(ctx, `UPDATE sluice.mirror_tables SET resync_status = 'pending' WHERE mirror = 'm'`); err != nil {
		t.Fatal(err)
	}
	if c := candidate(); c != "" {
		t.Fatalf("a mirror with a table resync under way handed over: %q", c)
	}
	if _, err := conn.Exec(ctx, `UPDATE sluice.mirror_tables SET resync_status = 'done' WHERE mirror = 'm'`); err != nil {
		t.Fatal(err)
	}
	if err := s.SetError(ctx, "m", "boom"); err != nil {
		t.Fatal(err)
	}
	if c := candidate(); c != "" {
		t.Fatalf("a failing mirror handed over: %q", c)
	}

	// Released free: the lease keeps when, and the mirror is the last
	// free (the most recently freed).
	if err := s.ReleaseLease(ctx, "m", catalog.Lease{Node: "n2", Epoch: e1}, 0, "handed over to balance the nodes"); err != nil {
		t.Fatal(err)
	}
	free, err = s.FreeMirrors(ctx)
	if err != nil || len(free) != 3 || free[2].Name != "m" || free[2].FreeFor > 10*time.Second {
		t.Fatalf("free mirrors after the release: %+v %v", free, err)
	}
	e2, ok, err := s.AcquireLease(ctx, "m", "n3", time.Minute, false)
	if err != nil || !ok {
		t.Fatalf("acquire the released lease: %v %v", ok, err)
	}
	if err := s.StopNode(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT message FROM sluice.mirror_events WHERE mirror = 'm' AND kind = 'node' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	events, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"stream started on node n2 (epoch 1)",
		"stream stopped on node n2 (epoch 1): handed over to balance the nodes",
		"stream started on node n3 (epoch 2)",
		"stream stopped on node n3 (epoch 2): the node stopped",
	}
	if e2 != 2 || strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Fatalf("node events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
}

// A mirror created reserved (CREATE MIRROR while it prepares it) is not
// free for the nodes' look, nor taken by one, until Unreserve; its
// statement may take it meanwhile. A failed CREATE MIRROR's undo thus
// races with no flow making its publication again.
func TestCreateMirrorReserved(t *testing.T) {
	s, _ := oneTableMirror(t)
	ctx := testCtx(t)
	err := s.CreateMirror(ctx, catalog.Mirror{Name: "r", SourcePeer: "a", DestinationPeer: "b", Options: map[string]string{},
		Publication: "pr", Slot: "sr", Tables: []catalog.MirrorTable{{Source: "public.t", Destination: "public.t"}}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		t.Helper()
		free, err := s.FreeMirrors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range free {
			out = append(out, f.Name)
		}
		return out
	}
	if got := strings.Join(names(), ","); got != "m" {
		t.Fatalf("free mirrors with r reserved: %q, want m", got)
	}
	if _, ok, err := s.AcquireLease(ctx, "r", "n1", time.Minute, false); err != nil || ok {
		t.Fatalf("a look took the reserved lease: %v %v", ok, err)
	}
	if err := s.Unreserve(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(), ","); got != "m,r" {
		t.Fatalf("free mirrors after Unreserve: %q, want m,r", got)
	}
	// Reserved again, the statement takes it; Unreserve leaves a held lease alone.
	if ok, err := s.ReserveLease(ctx, "r", time.Minute); err != nil || !ok {
		t.Fatalf("reserve: %v %v", ok, err)
	}
	if _, ok, err := s.AcquireLease(ctx, "r", "n1", time.Minute, true); err != nil || !ok {
		t.Fatalf("the statement could not take its reserved lease: %v %v", ok, err)
	}
	if err := s.Unreserve(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if h, err := s.GetLeaseHolder(ctx, "r"); err != nil || h.Node != "n1" {
		t.Fatalf("holder after Unreserve of a held lease: %+v %v", h, err)
	}
}
