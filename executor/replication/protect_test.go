package replication

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// A step that panics fails like any step: its error (a *PanicError) is
// recorded, and the step is retried after the backoff; the test process
// (the node) lives on.
func TestRetryRecoversPanic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeMirror{m: catalog.Mirror{Name: "m", Desired: catalog.DesiredRunning}, cancel: cancel,
		outcomes: []func(func()) error{func(func()) error {
			var vals []int
			return errors.New(string(rune(vals[3]))) // index out of range
		}, fail}}
	retry(ctx, f.deps())
	if f.steps != 2 || len(f.recorded) != 2 || len(f.sleeps) != 2 {
		t.Fatalf("%d steps, recorded %q, slept %v: want the panic recorded and the step retried", f.steps, f.recorded, f.sleeps)
	}
	if !strings.Contains(f.recorded[0], "internal error") || !strings.Contains(f.recorded[0], "index out of range") {
		t.Errorf("recorded %q, want the panic as an internal error", f.recorded[0])
	}
}

// A load worker that panics stops the load with a *PanicError, as a
// failing worker does; the other workers stop.
func TestRunWorkersRecoversPanic(t *testing.T) {
	err := runWorkers(context.Background(), 3, []int{1, 2, 3, 4, 5, 6}, func(ctx context.Context, queue <-chan int) error {
		for j := range queue {
			if j == 4 {
				panic("partition 4")
			}
		}
		return nil
	})
	if pe := (*PanicError)(nil); !errors.As(err, &pe) || pe.Value != "partition 4" || len(pe.Stack) == 0 {
		t.Fatalf("runWorkers returned %v, want the worker's panic with its stack", err)
	}
}

// A stream whose decoding panics (what a source sent, in the reader
// goroutine) ends the batcher's run with a *PanicError.
func TestBatcherRecoversReaderPanic(t *testing.T) {
	d := &dest{}
	b := newTestBatcher(d.applier(), 100, 1000)
	s := &fakeStream{read: func(context.Context, []connectors.Event, int, time.Duration) ([]connectors.Event, error) {
		panic("malformed message")
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := b.run(ctx, s)
	if pe := (*PanicError)(nil); !errors.As(err, &pe) || pe.Value != "malformed message" {
		t.Fatalf("run returned %v, want the reader's panic", err)
	}
}
