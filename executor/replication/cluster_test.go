package replication

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Two engines, two nodes, on one catalog, with the race detector: the
// lease decides which runs the mirror; Stop on the other node reaches the
// owner; Run there takes the mirror over; a lease taken away stops the
// owner's runner; Close frees the lease for the other node. The mirror's
// peers cannot be opened, so its flow retries for ever: a runner that
// holds the lease and stays, which is all the lease needs.
func TestEnginesShareLeases(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, catalog.KeySize)
	_, _ = rand.Read(key)
	store, err := catalog.Open(ctx, newCatalogDB(t), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	kinds, err := connectors.NewRegistry(connectors.Kind{Type: "FAKE", Name: "Fake", Source: true, Destination: true,
		Parse: func(map[string]string) (connectors.Peer, error) { return nil, errors.New("unreachable peer") }})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"src", "dst"} {
		if err := store.CreatePeer(ctx, catalog.Peer{Name: p, Type: "FAKE", Options: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
	}
	err = store.CreateMirror(ctx, catalog.Mirror{Name: "m", SourcePeer: "src", DestinationPeer: "dst", Options: map[string]string{},
		Tables: []catalog.MirrorTable{{Source: "public.users", Destination: "public.users"}}})
	if err != nil {
		t.Fatal(err)
	}
	engine := func(node string) *Engine {
		e, err := New(Config{Store: store, Kinds: kinds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Node: node, Address: node + ":1", NodeTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := engine("a"), engine("b")
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, e := range []*Engine{a, b} {
		if err := e.Start(runCtx); err != nil {
			t.Fatal(err)
		}
	}
	defer a.Close()
	defer b.Close()
	holder := func() string {
		h, err := store.GetLeaseHolder(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		return h.Node
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (holder %q, running on a %v, b %v)", what, holder(), a.Running("m"), b.Running("m"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	one := func() (owner, other *Engine) {
		t.Helper()
		eventually("the mirror running on exactly one node", func() bool {
			h := holder()
			return (h == "a" && a.Running("m") && !b.Running("m")) || (h == "b" && b.Running("m") && !a.Running("m"))
		})
		if holder() == "a" {
			return a, b
		}
		return b, a
	}
	owner, other := one()
	time.Sleep(600 * time.Millisecond) // heartbeats: it stays there
	if o, _ := one(); o != owner {
		t.Fatal("the mirror moved without a reason")
	}

	// Stop on the other node stops the owner's runner and frees the lease,
	// reserved: neither node's periodic look takes it.
	if err := other.Stop("m"); err != nil {
		t.Fatal(err)
	}
	if owner.Running("m") || holder() != "" {
		t.Fatalf("after Stop on the other node: owner running %v, holder %q", owner.Running("m"), holder())
	}
	time.Sleep(600 * time.Millisecond)
	if a.Running("m") || b.Running("m") {
		t.Fatal("a node took a lease a Stop reserved")
	}
	// Run there takes it.
	other.Run("m")
	eventually("the mirror running where Run was called", func() bool { return holder() == other.Node() && other.Running("m") })
	owner, other = other, owner

	// The lease taken away: the owner's runner stops at its next
	// heartbeat; once that lease expires, a node takes the mirror again.
	if _, err := store.Pool().Exec(ctx, `UPDATE sluice.mirrors SET node = 'thief', lease_epoch = lease_epoch + 1,
		lease_expires_at = now() + interval '1 second' WHERE name = 'm'`); err != nil {
		t.Fatal(err)
	}
	eventually("the owner's runner stopped", func() bool { return !owner.Running("m") })
	one()

	// Close frees the lease: the other node takes it at its next heartbeat.
	owner, other = one()
	owner.Close()
	eventually("the other node running the mirror", func() bool { return holder() == other.Node() && other.Running("m") })
	var status string
	if err := store.Pool().QueryRow(ctx, `SELECT status FROM sluice_status.nodes WHERE id = $1`, owner.Node()).Scan(&status); err != nil ||
		status != "stopped" {
		t.Fatalf("closed node: %q %v", status, err)
	}
}
