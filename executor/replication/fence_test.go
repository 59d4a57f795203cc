package replication

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// A step refused by the destination's fence (ErrFenced) ends the loop at
// once, as a lost lease does: no retry (no retry storm), no error recorded
// (the mirror does not show FAILED), and the fence reported once.
func TestRetryStopsWhenFenced(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fenced := fmt.Errorf("commit: %w", &connectors.FencedError{Mirror: "m", Epoch: 3, Recorded: 4})
	f := &fakeMirror{m: catalog.Mirror{Name: "m", Desired: catalog.DesiredRunning}, cancel: cancel,
		outcomes: []func(func()) error{fail, func(func()) error { return fenced }, fail}}
	var reported []error
	d := f.deps()
	d.fenced = func(_ context.Context, err error) { reported = append(reported, err) }
	retry(ctx, d)
	if f.steps != 2 {
		t.Errorf("%d steps ran, want 2 (none after the fenced one)", f.steps)
	}
	if len(f.recorded) != 1 || len(f.sleeps) != 1 {
		t.Errorf("recorded %q, slept %v: want only the first failure's", f.recorded, f.sleeps)
	}
	if len(reported) != 1 || reported[0] != fenced {
		t.Errorf("fence reported %v, want it once", reported)
	}
}

// With the fault injection that ignores lost leases, a step the catalog
// refused for a stale lease is retried like any failure (recorded, after
// a sleep), so the flow reaches the destination's claim, whose refusal
// stops it.
func TestRetryIgnoringLeaseLoss(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lost := fmt.Errorf("record progress: %w", catalog.ErrLeaseLost)
	fenced := &connectors.FencedError{Mirror: "m", Epoch: 3, Recorded: 4}
	f := &fakeMirror{m: catalog.Mirror{Name: "m", Desired: catalog.DesiredRunning}, cancel: cancel,
		outcomes: []func(func()) error{func(func()) error { return lost }, func(func()) error { return fenced }, fail}}
	var reported []error
	d := f.deps()
	d.fenced = func(_ context.Context, err error) { reported = append(reported, err) }
	d.ignoreLeaseLoss = true
	retry(ctx, d)
	if f.steps != 2 || len(f.recorded) != 1 || len(reported) != 1 {
		t.Errorf("%d steps, recorded %q, fence reported %v: want the lost lease retried, then the fence stopping the flow",
			f.steps, f.recorded, reported)
	}
	// Without it, the lost lease stops the flow at once.
	f = &fakeMirror{m: catalog.Mirror{Name: "m", Desired: catalog.DesiredRunning}, cancel: cancel,
		outcomes: []func(func()) error{func(func()) error { return lost }, fail}}
	retry(ctx, f.deps())
	if f.steps != 1 || len(f.recorded) != 0 {
		t.Errorf("%d steps, recorded %q: want the flow stopped by the lost lease", f.steps, f.recorded)
	}
}
