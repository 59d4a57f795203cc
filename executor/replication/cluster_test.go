package replication

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	store, kinds := unreachableMirrors(t, "m")
	engine := func(node string) *Engine {
		return newTestEngine(t, store, kinds, node, time.Second)
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

// unreachableMirrors makes a catalog with mirrors of names between two
// peers that cannot be opened: their flows retry for ever, holding their
// leases.
func unreachableMirrors(t *testing.T, names ...string) (*catalog.Store, *connectors.Registry) {
	t.Helper()
	ctx := context.Background()
	store := openStore(t)
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
	for _, name := range names {
		err = store.CreateMirror(ctx, catalog.Mirror{Name: name, SourcePeer: "src", DestinationPeer: "dst", Options: map[string]string{},
			Tables: []catalog.MirrorTable{{Source: "public.users", Destination: "public.users"}}}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
	return store, kinds
}

// newTestEngine returns an engine of node on store, not started.
func newTestEngine(t *testing.T, store *catalog.Store, kinds *connectors.Registry, node string, timeout time.Duration) *Engine {
	t.Helper()
	e, err := New(Config{Store: store, Kinds: kinds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Node: node, Address: node + ":1", NodeTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A node that closes hands its streams over at once: it frees their
// leases and tells the others, which take them well before their next
// heartbeat (every 2 s with a node timeout of 10 s); the events say
// where each stream stopped and started. Three nodes, four mirrors made
// once the nodes run: the periodic looks take them up to a fair share,
// ceil(4 / 3) = 2 a node.
func TestCloseHandsOverAtOnce(t *testing.T) {
	ctx := context.Background()
	names := []string{"m1", "m2", "m3", "m4"}
	store, kinds := unreachableMirrors(t)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	engines := map[string]*Engine{}
	for _, n := range []string{"a", "b", "c"} {
		e := newTestEngine(t, store, kinds, n, 10*time.Second)
		engines[n] = e
		defer e.Close()
		if err := e.Start(runCtx); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		err := store.CreateMirror(ctx, catalog.Mirror{Name: name, SourcePeer: "src", DestinationPeer: "dst", Options: map[string]string{},
			Tables: []catalog.MirrorTable{{Source: "public.users", Destination: "public.users"}}}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
	holders := func() map[string]string {
		out := map[string]string{}
		for _, m := range names {
			h, err := store.GetLeaseHolder(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			out[m] = h.Node
		}
		return out
	}
	count := func(h map[string]string) map[string]int {
		c := map[string]int{}
		for _, n := range h {
			c[n]++
		}
		return c
	}
	deadline := time.Now().Add(10 * time.Second)
	var h map[string]string
	for {
		h = holders()
		c := count(h)
		if c[""] == 0 && c["a"] <= 2 && c["b"] <= 2 && c["c"] <= 2 {
			break
		}
		if time.Now().After(deadline) || c["a"] > 2 || c["b"] > 2 || c["c"] > 2 {
			t.Fatalf("the four mirrors over three nodes: %v, want all held, two a node at most", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
	busiest := "a"
	for n, k := range count(h) {
		if k > count(h)[busiest] {
			busiest = n
		}
	}
	var rest []string
	for _, n := range []string{"a", "b", "c"} {
		if n != busiest {
			rest = append(rest, n)
		}
	}
	before := h
	closed := time.Now()
	engines[busiest].Close()
	deadline = closed.Add(1500 * time.Millisecond) // under a heartbeat
	for {
		h = holders()
		if c := count(h); c[rest[0]] == 2 && c[rest[1]] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("1.5 s after %s closed (heartbeats every 2 s): %v, want %v two each", busiest, h, rest)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%s's streams taken %s after it closed", busiest, time.Since(closed).Round(time.Millisecond))
	b := busiest
	for m := range h {
		if before[m] != b {
			continue
		}
		var msgs []string
		rows, err := store.Pool().Query(ctx, `SELECT message FROM sluice.mirror_events WHERE mirror = $1 AND kind = 'node' ORDER BY id`, m)
		if err != nil {
			t.Fatal(err)
		}
		if msgs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 3 || !strings.HasPrefix(msgs[0], "stream started on node "+b+" ") ||
			!strings.HasPrefix(msgs[1], "stream stopped on node "+b+" ") || !strings.HasSuffix(msgs[1], "the node is stopping") ||
			!strings.HasPrefix(msgs[2], "stream started on node "+h[m]+" ") {
			t.Errorf("%s's node events: %q, want its start and stop (stopping) on %s, then its start on %s", m, msgs, b, h[m])
		}
	}
}
