package replication

import (
	"fmt"
	"time"
)

// A load's window is how many of its partitions run at once (load_jobs.go).
// snapshot_max_parallel_workers is its upper bound, not its size: a load
// starts with one partition at a time and adds one while two things hold:
//
//   - what is left of the load, at the rate it copies now, takes long
//     enough to repay measuring a wider window (windowWorthIt), and
//   - the last partition added paid: with n at once, the load's rows per
//     second rose by at least half of what an n-th stream would add if
//     streams did not slow each other (rate(n) >= rate(n-1) * (1 +
//     0.5/(n-1))). When it did not, the window goes back to n-1 and stays.
//
// Why: parallel streams are only as fast as the servers' free cores. When
// the source, the destination and Sluice share few cores, more streams
// are slower: on the 2-core bench machine, loading pgbench_accounts (3M
// rows) with 4 concurrent COPYs took 3.5-3.8 s against 3.1-3.3 s with one,
// for about 1.2 s more CPU (concurrent COPYs into one table contend for its
// extension lock, and the table's pages interleave, so its primary key
// then sorts rows out of order). On servers with cores to spare each
// added stream raises the rate, and the window grows to the bound.
//
// The measurement uses the rows the owner sees: partitions done (on any
// node) and those this node is copying; partitions in flight on other
// nodes count when they end. A window is measured once full, after
// windowSettle, for windowSample.

const (
	windowSettle = 200 * time.Millisecond
	windowSample = 500 * time.Millisecond
	// windowWorthIt: a load widens its window only when what is left
	// would take at least this long at its current rate. Measuring a
	// wider window takes windowSettle plus windowSample, and a narrower
	// one after that waits for the partitions under way to end: a load
	// shorter than a few of those gains nothing from trying.
	windowWorthIt = 4 * (windowSettle + windowSample)
)

// loadWindow tunes a load's window. Not safe for concurrent use.
type loadWindow struct {
	max   int
	n     int
	fixed bool
	// The current level's measurement: filled when its n partitions were
	// first open; started (t0, rows0) windowSettle later.
	filled time.Time
	t0     time.Time
	rows0  int64
	// rate is the rows per second measured with measured partitions at
	// once: the last level that paid.
	rate     float64
	measured int
	// tried is the rate of the level taken back (0: none).
	tried float64
}

// newLoadWindow returns the window of a load of at most limit partitions
// at once.
func newLoadWindow(limit int) *loadWindow {
	w := &loadWindow{max: max(1, limit), n: 1}
	w.fixed = w.max == 1
	return w
}

// loadState is what a load's owner knows of it at a moment.
type loadState struct {
	rows    int64 // rows the load copied so far: partitions done, and in flight here
	open    int   // partitions enqueued and not done
	pending int   // partitions not enqueued yet
	done    int   // partitions the load finished, and their rows
	doneRow int64
}

// next returns the window at now, given the load's state.
func (w *loadWindow) next(now time.Time, s loadState) int {
	if w.fixed {
		return w.n
	}
	if w.filled.IsZero() {
		if s.open < w.n && s.pending > 0 {
			return w.n // still filling the level
		}
		w.filled = now
	}
	if w.t0.IsZero() {
		if now.Sub(w.filled) >= windowSettle {
			w.t0, w.rows0 = now, s.rows
		}
		return w.n
	}
	elapsed := now.Sub(w.t0)
	if elapsed < windowSample {
		return w.n
	}
	rate := float64(s.rows-w.rows0) / elapsed.Seconds()
	if w.n > 1 && rate < w.rate*(1+0.5/float64(w.n-1)) {
		// The last stream added did not pay.
		w.tried = rate
		w.n--
		w.fixed = true
		return w.n
	}
	w.rate, w.measured = rate, w.n
	if w.n >= w.max || s.pending == 0 || !worthWidening(s, rate) {
		w.fixed = true
		return w.n
	}
	w.n++
	w.filled, w.t0 = time.Time{}, time.Time{}
	return w.n
}

// worthWidening reports whether what is left of a load, at rate rows per
// second, takes at least windowWorthIt: the rows left are estimated from
// the partitions done (their average rows); before any is done, a
// partition is taken to be longer than the time measured so far, so the
// load is long enough.
func worthWidening(s loadState, rate float64) bool {
	if s.done == 0 || rate <= 0 {
		return true
	}
	left := float64(s.doneRow)/float64(s.done)*float64(s.open+s.pending) - float64(s.rows-s.doneRow)
	return left/rate >= windowWorthIt.Seconds()
}

// describe says why the window changed to w.n, for the mirror's events.
func (w *loadWindow) describe() string {
	if w.tried > 0 {
		return fmt.Sprintf("back to %d partition(s) at once: %.0f rows/s with %d, %.0f with %d",
			w.n, w.tried, w.n+1, w.rate, w.measured)
	}
	return fmt.Sprintf("copying %d partitions at once: %.0f rows/s with %d", w.n, w.rate, w.measured)
}
