package catalog_test

import (
	"errors"
	"testing"

	"github.com/sluicedb/sluice/catalog"
)

// TestAddRemoveMirrorTables adds tables to a mirror (after its others,
// with and without a load requested) and removes them: each refusal
// changes nothing, and the last table stays.
func TestAddRemoveMirrorTables(t *testing.T) {
	s, url := oneTableMirror(t)
	ctx := testCtx(t)
	if err := s.AddMirrorTables(ctx, "m", []catalog.MirrorTable{{Source: "public.u", Destination: "public.u", Exclude: []string{"x"}}}, "truncate"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMirrorTables(ctx, "m", []catalog.MirrorTable{{Source: "public.v", Destination: "public.v"}}, ""); err != nil {
		t.Fatal(err)
	}
	err := s.AddMirrorTables(ctx, "m", []catalog.MirrorTable{{Source: "public.w", Destination: "public.w"}, {Source: "public.u", Destination: "public.u2"}}, "")
	if !errors.Is(err, catalog.ErrTableInMirror) {
		t.Fatalf("adding a table twice: %v, want ErrTableInMirror", err)
	}
	if err := s.AddMirrorTables(ctx, "nope", []catalog.MirrorTable{{Source: "public.w", Destination: "public.w"}}, ""); !errors.Is(err, catalog.ErrMirrorNotFound) {
		t.Fatalf("adding to a missing mirror: %v, want ErrMirrorNotFound", err)
	}
	got, err := s.GetMirror(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tables) != 3 || got.Tables[1].Source != "public.u" || got.Tables[1].ResyncStatus != catalog.ResyncPending ||
		got.Tables[1].ResyncStrategy != "truncate" || len(got.Tables[1].Exclude) != 1 ||
		got.Tables[2].Source != "public.v" || got.Tables[2].ResyncStatus != "" || got.Tables[2].Status != "running" {
		t.Fatalf("tables after the adds: %+v", got.Tables)
	}

	if err := s.RemoveMirrorTable(ctx, "m", "public.x", ""); !errors.Is(err, catalog.ErrTableNotInMirror) {
		t.Fatalf("removing a table not in the mirror: %v", err)
	}
	for _, tbl := range []string{"public.u", "public.t"} {
		if err := s.RemoveMirrorTable(ctx, "m", tbl, "kept"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RemoveMirrorTable(ctx, "m", "public.v", ""); !errors.Is(err, catalog.ErrLastTable) {
		t.Fatalf("removing the last table: %v, want ErrLastTable", err)
	}
	conn := connect(t, url)
	var events string
	if err := conn.QueryRow(ctx, `SELECT string_agg(message, '; ' ORDER BY id) FROM sluice.mirror_events WHERE mirror = 'm' AND kind = 'tables'`).
		Scan(&events); err != nil {
		t.Fatal(err)
	}
	want := "added public.u: initial load requested; added public.v: streaming from now on, without an initial load; " +
		"dropped public.u: kept; dropped public.t: kept"
	if events != want {
		t.Fatalf("events %q, want %q", events, want)
	}
}

// twoPeers opens a catalog in a database of its own holding two Postgres
// peers, a and b; it returns the store and the database's URL.
func twoPeers(t *testing.T) (*catalog.Store, string) {
	t.Helper()
	url := cluster.NewDB(t)
	s := mustOpen(t, url, testKey(1))
	for _, name := range []string{"a", "b"} {
		p := catalog.Peer{Name: name, Type: "POSTGRES", Options: map[string]string{"host": "h", "port": "5432", "database": "d", "user": "u", "password": "pw"}}
		if err := s.CreatePeer(testCtx(t), p); err != nil {
			t.Fatal(err)
		}
	}
	return s, url
}

// oneTableMirror opens a catalog in a database of its own holding two
// peers, a and b, and mirror m from a to b of table public.t; it returns
// the store and the database's URL.
func oneTableMirror(t *testing.T) (*catalog.Store, string) {
	t.Helper()
	s, url := twoPeers(t)
	ctx := testCtx(t)
	m := catalog.Mirror{Name: "m", SourcePeer: "a", DestinationPeer: "b", Options: map[string]string{}, Publication: "p", Slot: "s",
		Tables: []catalog.MirrorTable{{Source: "public.t", Destination: "public.t"}}}
	if err := s.CreateMirror(ctx, m, 0); err != nil {
		t.Fatal(err)
	}
	return s, url
}
