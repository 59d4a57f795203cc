package replication

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
)

// fakeMirror is a struct-of-functions fake of what the retry loop uses: a
// catalog that holds one mirror and a scripted sequence of step outcomes.
type fakeMirror struct {
	mu       sync.Mutex
	m        catalog.Mirror
	loadErrs []error // returned by the next loads, in order
	outcomes []func(progress func()) error
	steps    int
	recorded []string
	sleeps   []time.Duration
	cancel   context.CancelFunc
}

type nopLog struct{}

func (nopLog) ErrorContext(context.Context, string, ...any) {}
func (nopLog) InfoContext(context.Context, string, ...any)  {}

func (f *fakeMirror) deps() retryDeps {
	return retryDeps{
		load: func(ctx context.Context) (catalog.Mirror, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.loadErrs) > 0 {
				err := f.loadErrs[0]
				f.loadErrs = f.loadErrs[1:]
				return catalog.Mirror{}, err
			}
			return f.m, nil
		},
		step: func(ctx context.Context, m catalog.Mirror, progress func()) error {
			f.mu.Lock()
			if f.steps == len(f.outcomes) {
				f.mu.Unlock()
				f.cancel() // script done: stop the loop
				return ctx.Err()
			}
			o := f.outcomes[f.steps]
			f.steps++
			f.mu.Unlock()
			return o(progress)
		},
		record: func(ctx context.Context, err error) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.recorded = append(f.recorded, err.Error())
			f.m.Error = err.Error()
			f.m.ErrorNeedsAction = NeedsUser(err)
			return nil
		},
		sleep: func(ctx context.Context, d time.Duration) bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.sleeps = append(f.sleeps, d)
			return ctx.Err() == nil
		},
		log: nopLog{},
	}
}

func fail(progress func()) error { return errors.New("destination unreachable") }

func progressThenFail(progress func()) error {
	progress()
	return errors.New("destination unreachable")
}

func TestRetryBackoff(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name     string
		outcomes []func(func()) error
		want     []time.Duration
	}{
		{"doubles up to the cap",
			[]func(func()) error{fail, fail, fail, fail, fail, fail, fail},
			[]time.Duration{1 * sec, 2 * sec, 4 * sec, 8 * sec, 10 * sec, 10 * sec, 10 * sec}},
		{"starts over after progress, outage after outage",
			[]func(func()) error{fail, fail, fail, fail, progressThenFail, fail, fail, fail, progressThenFail, fail, progressThenFail},
			[]time.Duration{1 * sec, 2 * sec, 4 * sec, 8 * sec, 1 * sec, 2 * sec, 4 * sec, 8 * sec, 1 * sec, 2 * sec, 1 * sec}},
		{"starts over after a step that succeeds",
			[]func(func()) error{fail, fail, fail, func(func()) error { return nil }, fail},
			[]time.Duration{1 * sec, 2 * sec, 4 * sec, 1 * sec}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := &fakeMirror{m: catalog.Mirror{Name: "m", Desired: catalog.DesiredRunning}, outcomes: tt.outcomes, cancel: cancel}
			retry(ctx, f.deps())
			if !slices.Equal(f.sleeps, tt.want) {
				t.Fatalf("retry delays %v, want %v", f.sleeps, tt.want)
			}
			if f.steps != len(tt.outcomes) {
				t.Fatalf("%d steps ran, want %d", f.steps, len(tt.outcomes))
			}
			for _, d := range f.sleeps {
				if d > 15*time.Second {
					t.Fatalf("delay %v exceeds the cap", d)
				}
			}
		})
	}
}

// An error that needs the user is recorded once, then the loop waits
// without running the step again until its context ends (the user acts).
func TestRetryWaitsForUser(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lost := LostStreamError("m", "sluice_m", "src")
	f := &fakeMirror{m: catalog.Mirror{Name: "m", Desired: catalog.DesiredRunning}, cancel: cancel,
		outcomes: []func(func()) error{fail, func(func()) error { return lost }, fail, fail}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		retry(ctx, f.deps())
	}()
	time.Sleep(300 * time.Millisecond)
	f.mu.Lock()
	steps, recorded, sleeps := f.steps, slices.Clone(f.recorded), slices.Clone(f.sleeps)
	f.mu.Unlock()
	select {
	case <-done:
		t.Fatal("the loop ended on its own: it should wait for the user")
	default:
	}
	if steps != 2 {
		t.Fatalf("%d steps ran, want 2 (none after the error that needs the user)", steps)
	}
	if len(recorded) != 2 || recorded[1] != lost.Error() || len(sleeps) != 1 {
		t.Fatalf("recorded %q, delays %v", recorded, sleeps)
	}
	cancel()
	<-done
}

// While the catalog cannot be read nothing is recorded over the mirror's
// error, and the delay is capped as for a failing step.
func TestRetryCatalogAway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	away := errors.New("catalog: connection refused")
	f := &fakeMirror{m: catalog.Mirror{Name: "m", Desired: catalog.DesiredRunning}, cancel: cancel,
		loadErrs: []error{away, away, away, away, away, away},
		outcomes: []func(func()) error{progressThenFail}}
	retry(ctx, f.deps())
	if len(f.recorded) != 1 || f.recorded[0] != "destination unreachable" {
		t.Fatalf("recorded %q, want only the step's error", f.recorded)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second, time.Second}
	if !slices.Equal(f.sleeps, want) {
		t.Fatalf("delays %v, want %v", f.sleeps, want)
	}
}
