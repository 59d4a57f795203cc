package replication

import (
	"time"
)

// Observer receives what the flows measure as they run and the catalog
// does not keep: bytes read from sources, how long batches take, errors.
// Metrics (server/metrics) implement it; the flows know nothing of how the
// figures are exported. Its methods are called from the flows' goroutines,
// so an implementation is safe for concurrent use, and quick: it must not
// block a flow.
type Observer interface {
	// FetchedBytes adds n bytes the mirror's change stream received from
	// its source (the protocol's messages as they came).
	FetchedBytes(mirror string, n int64)
	// BatchApplied reports a CDC batch of rows row changes applied and
	// recorded, took after the destination transaction opened.
	BatchApplied(mirror string, rows int, took time.Duration)
	// Error counts an error of the mirror, of one of the Error* classes.
	Error(mirror, class string)
}

// Classes of errors an Observer counts.
const (
	// ErrorRetried is a failing step that is retried.
	ErrorRetried = "retried"
	// ErrorNeedsUser is a failing step that waits for the user (a lost
	// stream, a destination that cannot do what the mirror needs).
	ErrorNeedsUser = "needs_user"
	// ErrorTable is a table whose changes failed to apply: the table is
	// held, the other tables go on.
	ErrorTable = "table"
)

// nopObserver is the Observer of an engine configured without one.
type nopObserver struct{}

func (nopObserver) FetchedBytes(string, int64)              {}
func (nopObserver) BatchApplied(string, int, time.Duration) {}
func (nopObserver) Error(string, string)                    {}

// observer is the flow's engine's Observer (a no-op one without an engine,
// in tests).
func (f *flow) observer() Observer {
	if f.e == nil {
		return nopObserver{}
	}
	return f.e.cfg.Observer
}
