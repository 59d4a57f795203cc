package replication

import (
	"context"
	"sync"
	"testing"

	"github.com/sluicedb/sluice/catalog"
)

// TestBatcherFollowsOptions changes max_batch_size in the (fake) catalog
// while the batcher runs and wakes it, as ALTER MIRROR does: the batches
// after the wake-up are made under the new limit, with no restart.
func TestBatcherFollowsOptions(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 100, 1000)
	var mu sync.Mutex
	opts := map[string]string{"max_batch_size": "1000", "sync_interval": "3600"}
	b.store = &fakeCatalog{getMirror: func(_ context.Context, name string) (catalog.Mirror, error) {
		mu.Lock()
		defer mu.Unlock()
		return catalog.Mirror{Name: name, Options: opts}, nil
	}}
	wake := make(chan struct{}) // unbuffered: a send returns once the batcher has it
	b.f.wake = wake
	running(t, b, d.stream(f))

	// Under max_batch_size = 1000, two transactions in one read are one batch.
	f <- append(tx(110, 120, "1"), tx(130, 140, "2")...)
	eventually(t, "the first batch", func() bool { c, _, _ := d.snapshot(); return len(c) == 1 })

	mu.Lock()
	opts = map[string]string{"max_batch_size": "1", "sync_interval": "3600"}
	mu.Unlock()
	wake <- struct{}{} // the batcher reads the options before it takes more events
	f <- append(append(tx(150, 160, "3"), tx(170, 180, "4")...), tx(190, 200, "5")...)
	eventually(t, "four batches", func() bool { c, _, _ := d.snapshot(); return len(c) == 4 })
	commits, _, _ := d.snapshot()
	want := []string{"a:1,a:2", "a:3", "a:4", "a:5"}
	for i, w := range want {
		if commits[i].String() != w {
			t.Errorf("batch %d: %s, want %s", i, commits[i], w)
		}
	}
}
