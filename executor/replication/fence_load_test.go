package replication

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// A fake destination with a fence (connectors.Fencer) over the flow
// tests' fakes: it keeps the highest epoch claimed, and its loaders
// refuse a partition of an earlier one, as the real destinations do
// (connectors.LoadJob.Epoch).

// fenceRecord is the epoch a fencingPeer's destination records.
type fenceRecord struct {
	mu    sync.Mutex
	epoch int64
	// claimOnLoad, when above epoch, is recorded by the first Load: a
	// later owner claims the destination while the load runs.
	claimOnLoad int64
	// seen are the epochs of the partitions Load was given.
	seen []int64
}

// fencingPeer is a fakePeer whose destination is a fencingDest.
type fencingPeer struct {
	*fakePeer
	rec *fenceRecord
}

func (p *fencingPeer) OpenDestination(ctx context.Context, appName, mirror string) (connectors.Destination, error) {
	d, err := p.fakePeer.OpenDestination(ctx, appName, mirror)
	if err != nil {
		return nil, err
	}
	return &fencingDest{Destination: d, rec: p.rec}, nil
}

// fencingDest is a fake destination that is a connectors.Fencer.
type fencingDest struct {
	connectors.Destination
	rec *fenceRecord
}

var _ connectors.Fencer = (*fencingDest)(nil)

// Fence refuses an epoch below the recorded one, else records it.
func (d *fencingDest) Fence(ctx context.Context, epoch int64) ([]string, error) {
	d.rec.mu.Lock()
	defer d.rec.mu.Unlock()
	if epoch < d.rec.epoch {
		return nil, &connectors.FencedError{Mirror: "m", Epoch: epoch, Recorded: d.rec.epoch}
	}
	d.rec.epoch = epoch
	return nil, nil
}

func (d *fencingDest) OpenLoader(ctx context.Context) (connectors.Loader, error) {
	l, err := d.Destination.OpenLoader(ctx)
	if err != nil {
		return nil, err
	}
	return &fencingLoader{Loader: l, rec: d.rec}, nil
}

// fencingLoader refuses a partition of an epoch below the recorded one.
type fencingLoader struct {
	connectors.Loader
	rec *fenceRecord
}

func (l *fencingLoader) Load(ctx context.Context, r connectors.PartitionReader, job connectors.LoadJob) (int64, error) {
	l.rec.mu.Lock()
	l.rec.seen = append(l.rec.seen, job.Epoch)
	l.rec.epoch = max(l.rec.epoch, l.rec.claimOnLoad)
	recorded := l.rec.epoch
	l.rec.mu.Unlock()
	if job.Epoch != 0 && job.Epoch < recorded {
		return 0, &connectors.FencedError{Mirror: "m", Epoch: job.Epoch, Recorded: recorded}
	}
	return l.Loader.Load(ctx, r, job)
}

// A load whose destination a later lease epoch claims while its
// partitions run as jobs: each partition carries the load's epoch, the
// destination refuses them, and their jobs end cancelled after one
// attempt (never retried); the owner's flow stops as on a lost lease,
// with the fence's event, rather than retrying its load.
func TestFencedLoadPartitionsEndTheLoad(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	w := newWorld(map[connectors.TableName]int{usersTable: 10, ordersTable: 25}, 10)
	rec := &fenceRecord{claimOnLoad: 1000}
	kinds, err := connectors.NewRegistry(connectors.Kind{Type: "FAKE", Name: "Fake", Source: true, Destination: true,
		Parse: func(map[string]string) (connectors.Peer, error) {
			return &fencingPeer{fakePeer: &fakePeer{w: w}, rec: rec}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"src", "dst"} {
		if err := store.CreatePeer(ctx, catalog.Peer{Name: p, Type: "FAKE", Options: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
	}
	err = store.CreateMirror(ctx, catalog.Mirror{Name: "m", SourcePeer: "src", DestinationPeer: "dst", Options: map[string]string{
		"do_initial_copy": "true", "publication_name": "sluice_m", "replication_slot_name": "sluice_m",
		"snapshot_num_rows_per_partition": "10", "snapshot_max_parallel_workers": "2", "snapshot_num_tables_in_parallel": "2"},
		Tables: []catalog.MirrorTable{{Source: "public.users", Destination: "public.users"}, {Source: "public.orders", Destination: "public.orders"}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, store, kinds, "a", 10*time.Second)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := e.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	var events []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err := store.Pool().Query(ctx, `SELECT message FROM sluice.mirror_events WHERE mirror = 'm' AND kind = 'lease' ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		events = events[:0]
		for rows.Next() {
			var m string
			if err := rows.Scan(&m); err != nil {
				t.Fatal(err)
			}
			events = append(events, m)
		}
		rows.Close()
		if len(events) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the flow to stop on the fenced load")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(events[0], "stopped the mirror's flow") || !strings.Contains(events[0], "superseded by epoch 1000") {
		t.Errorf("lease event %q, want the flow stopped by the fence", events[0])
	}
	rec.mu.Lock()
	seen := append([]int64(nil), rec.seen...)
	rec.mu.Unlock()
	if len(seen) == 0 || seen[0] == 0 || seen[0] >= 1000 {
		t.Fatalf("partitions loaded with epochs %v, want the owner's lease epoch", seen)
	}
	for _, ep := range seen {
		if ep != seen[0] {
			t.Fatalf("partitions loaded with epochs %v, want one load's", seen)
		}
	}
	// The load's jobs: none loaded, none retried, none left to run.
	time.Sleep(500 * time.Millisecond)
	rows, err := store.Pool().Query(ctx, `SELECT state::text, attempt, coalesce(errors[cardinality(errors)]->>'error', '')
FROM sluice.river_job WHERE kind = $1 AND args->>'mirror' = 'm' AND (args->>'epoch')::bigint = $2`, loadPartitionKind, seen[0])
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var state, msg string
		var attempt int
		if err := rows.Scan(&state, &attempt, &msg); err != nil {
			t.Fatal(err)
		}
		n++
		if state != "cancelled" || attempt > 1 {
			t.Errorf("a job of the fenced load is %s after %d attempts (%s), want cancelled after at most one", state, attempt, msg)
		}
		if attempt == 1 && !strings.Contains(msg, connectors.ErrFenced.Error()) {
			t.Errorf("a refused job's error is %q, want the fence's", msg)
		}
	}
	if n == 0 {
		t.Fatal("no job of the fenced load found by its epoch")
	}
	rows.Close()
	w.mu.Lock()
	if len(w.loaded) != 0 {
		t.Errorf("partitions recorded loaded: %v, want none", w.loaded)
	}
	w.mu.Unlock()

	// A partition of a stale load whose owner is frozen, so that nobody
	// cancels its jobs: its job ends cancelled after its one attempt,
	// rather than being retried (every second, up to 25 times).
	e.mu.Lock()
	client := e.jobs.client
	e.mu.Unlock()
	res, err := client.Insert(ctx, loadPartitionArgs{Mirror: "m", Table: usersTable.String(), Partition: 0, Load: "frozen-owner",
		Bounds: connectors.Partition(`{"from":0}`), Snapshot: "snap-1", Dest: connectors.DestTable{Source: usersTable, Dest: usersTable},
		Epoch: seen[0]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	job := func() (state string, attempt int, msg string) {
		t.Helper()
		err := store.Pool().QueryRow(ctx, `SELECT state::text, attempt, coalesce(errors[cardinality(errors)]->>'error', '')
FROM sluice.river_job WHERE id = $1`, res.Job.ID).Scan(&state, &attempt, &msg)
		if err != nil {
			t.Fatal(err)
		}
		return state, attempt, msg
	}
	deadline = time.Now().Add(10 * time.Second)
	for state, attempt, _ := job(); attempt == 0 && state != "cancelled"; state, attempt, _ = job() {
		if time.Now().After(deadline) {
			t.Fatalf("the stale partition's job was not worked: %s", state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(minBackoff + 500*time.Millisecond) // a retry would have run by now
	if state, attempt, msg := job(); state != "cancelled" || attempt != 1 || !strings.Contains(msg, connectors.ErrFenced.Error()) {
		t.Errorf("the stale partition's job is %s after %d attempts (%q), want cancelled by the fence after one", state, attempt, msg)
	}
}
