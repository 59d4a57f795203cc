package executor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/executor"
)

// progressRows is the size of the tables the progress tests copy; the
// copy hook lets about progressRate rows a second through, so that each
// copy lasts a few seconds.
const (
	progressRows = 3000
	progressRate = 1000
)

// slowCopies slows the copies of mirror to about progressRate rows a
// second, and holds each step after the copy for a moment so that a
// sampler sees it, until the test ends.
func slowCopies(t *testing.T, mirror string) {
	restoreRows := executor.SetCopyRowHook(func(m string, rows int64) {
		if m == mirror && rows%100 == 0 {
			time.Sleep(100 * time.Second / progressRate)
		}
	})
	restoreSteps := executor.SetStepHook(func(m, step string) {
		if m == mirror && step != "copying" && step != "streaming" && step != "waiting" {
			time.Sleep(400 * time.Millisecond)
		}
	})
	t.Cleanup(func() {
		restoreRows()
		restoreSteps()
	})
}

// progressSample is one reading of a table's row of mirror_tables.
type progressSample struct {
	at                time.Time
	copied, estimated int64
	step              string
	stepAt            time.Time
}

// sampler reads a table's progress from sluice_status.mirror_tables every
// 100 ms, on a connection of its own, until done is called.
type sampler struct {
	mu      sync.Mutex
	samples []progressSample
	stop    chan struct{}
	ended   chan struct{}
}

func startSampler(t *testing.T, url, mirror, table string) *sampler {
	s := &sampler{stop: make(chan struct{}), ended: make(chan struct{})}
	conn := connect(t, url)
	go func() {
		defer close(s.ended)
		for {
			var p progressSample
			err := conn.QueryRow(context.Background(), `SELECT rows_copied, rows_estimated, step, step_started_at
				FROM mirror_tables WHERE mirror = $1 AND source_table = $2`, mirror, table).
				Scan(&p.copied, &p.estimated, &p.step, &p.stepAt)
			switch {
			case errors.Is(err, pgx.ErrNoRows): // the mirror is not created yet
			case err != nil:
				t.Errorf("sample progress of %s: %v", table, err)
				return
			default:
				p.at = time.Now()
				s.mu.Lock()
				s.samples = append(s.samples, p)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

// done stops the sampler and returns its samples.
func (s *sampler) done() []progressSample {
	close(s.stop)
	<-s.ended
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// checkProgress checks the samples of one copy of total rows: the estimate
// is never below the count; while the table is copying, the count never
// goes back and moves at least every 2 s until it reaches total, passing
// through values in between; the table ends with exactly total rows, as
// estimated; and the table went through the steps want, in that order.
func checkProgress(t *testing.T, what string, samples []progressSample, total int64, want []string) {
	t.Helper()
	if len(samples) == 0 {
		t.Fatalf("%s: no sample", what)
	}
	var steps []string
	var between int
	var lastMove time.Time
	var prev *progressSample
	for i := range samples {
		s := &samples[i]
		if s.estimated < s.copied {
			t.Errorf("%s: rows_estimated %d below rows_copied %d at %s", what, s.estimated, s.copied, s.at.Format(time.StampMilli))
		}
		if len(steps) == 0 || steps[len(steps)-1] != s.step {
			steps = append(steps, s.step)
		}
		if s.step != "copying" {
			prev = nil
			continue
		}
		switch {
		case prev == nil:
			// The copy began when the table entered the step.
			lastMove = s.stepAt
			if s.copied > 0 && s.copied < total {
				between++
			}
		case s.copied < prev.copied:
			t.Errorf("%s: rows_copied went back from %d to %d", what, prev.copied, s.copied)
		case s.copied > prev.copied:
			lastMove = s.at
			if s.copied < total {
				between++
			}
		case s.copied < total && s.at.Sub(lastMove) > 2*time.Second:
			t.Errorf("%s: rows_copied stayed at %d for %s while copying", what, s.copied, s.at.Sub(lastMove).Round(time.Millisecond))
			lastMove = s.at // one error per stall
		}
		prev = s
	}
	if between < 2 {
		t.Errorf("%s: rows_copied took %d values between 0 and %d while copying, want several", what, between, total)
	}
	if last := samples[len(samples)-1]; last.copied != total || last.estimated != total {
		t.Errorf("%s: ended with rows_copied %d, rows_estimated %d, want %d for both", what, last.copied, last.estimated, total)
	}
	if !isSubsequence(want, steps) {
		t.Errorf("%s: steps %q, want %q in that order", what, steps, want)
	}
}

// isSubsequence reports whether want appears in got in order, not
// necessarily next to each other.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// waitStep waits until the table is at step.
func waitStep(t *testing.T, conn *pgx.Conn, mirror, table, step string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		err := conn.QueryRow(testCtx(t), `SELECT step FROM mirror_tables WHERE mirror = $1 AND source_table = $2`,
			mirror, table).Scan(&got)
		if err == nil && got == step {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s.%s: step %q, want %q", mirror, table, got, step)
}

// progressSource makes the table the progress tests copy: progressRows
// rows, of which the planner knows half (so the copy passes its estimate).
func progressSource(t *testing.T, src *pgx.Conn) {
	half := progressRows / 2
	mustExec(t, src, fmt.Sprintf(`
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, %d) g;
ANALYZE big;
INSERT INTO big SELECT g, 'v' || g FROM generate_series(%d, %d) g;`, half, half+1, progressRows))
}

// runSampled runs stmt and samples the table's progress until the table
// is at step end again (it has left it first).
func runSampled(t *testing.T, f *mirrorFixture, mirror, stmt, during, end string) []progressSample {
	t.Helper()
	s := startSampler(t, f.s.URL(), mirror, "public.big")
	mustExec(t, f.conn, stmt)
	waitStep(t, f.conn, mirror, "public.big", "copying")
	if during != "" {
		mustExec(t, f.src, during)
	}
	waitStep(t, f.conn, mirror, "public.big", end)
	time.Sleep(300 * time.Millisecond)
	return s.done()
}

// TestCopyProgressPostgres samples mirror_tables while a table is copied
// into Postgres (initial load, RESYNC TABLE with swap and truncate, RESYNC
// MIRROR): rows_copied moves at least every 2 s, rows_estimated is never
// below it, and the table shows each step, those after the copy included.
func TestCopyProgressPostgres(t *testing.T) {
	f := newMirrorFixture(t)
	progressSource(t, f.src)
	slowCopies(t, "prog")
	const total = progressRows

	samples := runSampled(t, f, "prog", `CREATE MIRROR prog FROM src TO dst WITH TABLE MAPPING (public.big:big)
		WITH (snapshot_num_rows_per_partition = 10000, snapshot_max_parallel_workers = 1)`, "", "streaming")
	checkProgress(t, "initial load", samples, total, []string{"copying", "building indexes", "streaming"})
	f.waitStatus(t, "prog", "RUNNING")

	samples = runSampled(t, f, "prog", "RESYNC TABLE prog.public.big WITH (strategy = 'swap')",
		"UPDATE big SET v = 'during swap' WHERE id <= 10", "streaming")
	checkProgress(t, "swap resync", samples, total, []string{"copying", "building indexes",
		"applying changes since snapshot", "swapping", "streaming"})
	f.waitResync(t, "prog", "public.big", "done")

	samples = runSampled(t, f, "prog", "RESYNC TABLE prog.public.big WITH (strategy = 'truncate')",
		"UPDATE big SET v = 'during truncate' WHERE id <= 10", "streaming")
	checkProgress(t, "truncate resync", samples, total, []string{"copying", "building indexes",
		"applying changes since snapshot", "streaming"})
	f.waitResync(t, "prog", "public.big", "done")

	samples = runSampled(t, f, "prog", "RESYNC MIRROR prog", "", "streaming")
	checkProgress(t, "mirror resync", samples, total, []string{"copying", "building indexes", "swapping", "streaming"})
	f.waitStatus(t, "prog", "RUNNING")
	waitEqual(t, f.src, f.dst, "big", "big", "id")
}

// TestCopyProgressClickHouse is TestCopyProgressPostgres into ClickHouse
// (whose resyncs all swap).
func TestCopyProgressClickHouse(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	mustExec(t, f.conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d, database = 'default')", ch.Port()))
	progressSource(t, f.src)
	slowCopies(t, "chprog")
	const total = progressRows

	samples := runSampled(t, f, "chprog", `CREATE MIRROR chprog FROM src TO ch WITH TABLE MAPPING (public.big:big)
		WITH (snapshot_num_rows_per_partition = 10000, snapshot_max_parallel_workers = 1)`, "", "streaming")
	checkProgress(t, "initial load", samples, total, []string{"copying", "streaming"})
	f.waitStatus(t, "chprog", "RUNNING")

	samples = runSampled(t, f, "chprog", "RESYNC TABLE chprog.public.big WITH (strategy = 'swap')",
		"UPDATE big SET v = 'during swap' WHERE id <= 10", "streaming")
	checkProgress(t, "swap resync", samples, total, []string{"copying", "applying changes since snapshot", "swapping", "streaming"})
	f.waitResync(t, "chprog", "public.big", "done")

	samples = runSampled(t, f, "chprog", "RESYNC MIRROR chprog", "", "streaming")
	checkProgress(t, "mirror resync", samples, total, []string{"copying", "swapping", "streaming"})
	f.waitStatus(t, "chprog", "RUNNING")
	const pgBig = `SELECT id || '|' || v FROM big ORDER BY id`
	const chBig = `SELECT concat(toString(id), '|', v) FROM big FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	waitSame(t, f.src, pgBig, ch, chBig)
}
