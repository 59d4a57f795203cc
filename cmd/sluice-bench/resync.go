package main

// The resyncs' figures (-resync): each kind of resync of the mirror's
// pgbench_accounts, timed alone and under a reader, against a pipe of the
// table as the resyncs copy it.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// benchResync times each kind of resync of the mirror's pgbench_accounts
// against a COPY pipe of the table as it is then, alone and with a reader
// polling the table; firstPipe, the pipe's time of the initial load, is
// printed beside.
func benchResync(ctx context.Context, sl *pgx.Conn, srcURL string, dstC *testbed.Cluster, rows int64, firstPipe float64) error {
	// The resyncs copy the table as the catch-up left it: its changed
	// rows' new versions at the end of the heap (out of key order, so the
	// primary key's sort no longer finds its input sorted) and the old
	// ones still there (autovacuum is off). The first pipe copied it fresh
	// from pgbench: the primary key took 0.7 s after it and 1.2-1.35 s
	// after a resync's copy, and the source's COPY 2.3 s against 2.5-2.9
	// s. So the resyncs are set against a pipe of the table as it is now,
	// run before and after them; the faster counts.
	pipeNow := func(db string) (float64, error) {
		if err := exec1(ctx, dstC.URL("postgres"), "CREATE DATABASE "+db); err != nil {
			return 0, err
		}
		if err := checkpoint(ctx); err != nil {
			return 0, err
		}
		secs, err := copyPipe(ctx, srcURL, dstC.URL(db))
		if err != nil {
			return 0, err
		}
		return secs, exec1(ctx, dstC.URL("postgres"), "DROP DATABASE "+db)
	}
	before, err := pipeNow("rpipe1")
	if err != nil {
		return err
	}
	type result struct {
		name        string
		alone, read resyncRun
		r           *probe
	}
	var results []result
	dstURL := dstC.URL("mirror")
	for _, c := range []struct{ name, phase, stmt, done string }{
		{"RESYNC TABLE truncate", "resync-truncate", "RESYNC TABLE bench.public.pgbench_accounts WITH (strategy = 'truncate')",
			"SELECT resync_status = 'done' FROM mirror_tables WHERE mirror = 'bench'"},
		{"RESYNC TABLE swap", "resync-swap", "RESYNC TABLE bench.public.pgbench_accounts WITH (strategy = 'swap')",
			"SELECT resync_status = 'done' FROM mirror_tables WHERE mirror = 'bench'"},
		{"RESYNC MIRROR", "resync-mirror", "RESYNC MIRROR bench",
			"SELECT status = 'RUNNING' AND NOT resyncing FROM mirrors WHERE name = 'bench'"},
	} {
		// Timed alone, as the pipe was: the reader's queries compete for
		// the same two cores (and, during a truncate resync, scan the
		// whole table: its indexes are dropped until the copy is done).
		// Twice, as the pipe ran twice, and the faster counts: the first
		// load after some steps costs the destination's COPY backend
		// twice the system time (1.4-1.5 s against 0.6-0.7 s, sampled
		// from /proc), the pipe's as well as a resync's: the first pipe
		// after the catch-up, and the swap after the truncate resync
		// under a reader.
		alone, err := timeResync(ctx, sl, c.stmt, c.done, nil, c.phase)
		if err != nil {
			return err
		}
		again, err := timeResync(ctx, sl, c.stmt, c.done, nil, c.phase+"-again")
		if err != nil {
			return err
		}
		if again.secs < alone.secs {
			alone = again
		}
		// Then again under a reader, for what readers see.
		r, err := startReader(ctx, dstURL, rows)
		if err != nil {
			return err
		}
		read, err := timeResync(ctx, sl, c.stmt, c.done, r, c.phase+"-reader")
		if err != nil {
			return err
		}
		results = append(results, result{c.name, alone, read, r})
	}
	after, err := pipeNow("rpipe2")
	if err != nil {
		return err
	}
	pipeSecs := min(before, after)
	fmt.Printf("\n== resync of pgbench_accounts, %d rows (COPY pipe + primary key of the table as the resyncs copy it: %.2f s and %.2f s, before and after them; the first pipe: %.2f s) ==\n",
		rows, before, after, firstPipe)
	fmt.Printf("%-24s %9s %11s %8s %7s | %9s %14s %8s %7s %9s\n", "", "seconds", "rows/s", "vs pipe", "CPU s",
		"w/ reader", "reader longest", "empties", "errors", "peak RSS")
	for _, x := range results {
		fmt.Printf("%-24s %9.2f %11.0f %8.2f %7.2f | %9.2f %12.0fms %8d %7d %6.0f MB\n", x.name, x.alone.secs, float64(rows)/x.alone.secs,
			pipeSecs/x.alone.secs, x.alone.cpu, x.read.secs, float64(x.r.longest.Microseconds())/1000, x.r.empties, x.r.errs,
			float64(max(x.alone.peak, x.read.peak))/(1<<20))
	}
	fmt.Printf("(vs pipe: the faster of those two pipes' times over the faster of two runs of the resync alone; CPU s: of the servers and the bench process;\n" +
		" w/ reader: the same resync again while a reader counts 100 keys of the table every 2 ms)\n")
	for _, x := range results {
		fmt.Println(x.name + " (alone): " + x.alone.timeline)
	}
	return nil
}

// resyncRun is one timed resync.
type resyncRun struct {
	secs, cpu float64
	peak      int64
	// timeline is the mirror's events during the resync, each at its
	// offset from the statement.
	timeline string
}

// timeResync runs stmt and waits until done is true, after a checkpoint;
// r, when not nil, is stopped when done.
func timeResync(ctx context.Context, sl *pgx.Conn, stmt, done string, r *probe, phaseName string) (resyncRun, error) {
	if r != nil {
		defer r.stop()
	}
	ph, err := startPhase(phaseName, profileDir)
	if err != nil {
		return resyncRun{}, err
	}
	if err := checkpoint(ctx); err != nil {
		return resyncRun{}, err
	}
	cpu0, err := cpuNow(servers...)
	if err != nil {
		return resyncRun{}, err
	}
	var t0 time.Time
	if err := sl.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&t0); err != nil {
		return resyncRun{}, err
	}
	start := time.Now()
	if _, err := sl.Exec(ctx, stmt); err != nil {
		return resyncRun{}, err
	}
	if err := waitFor(ctx, sl, done); err != nil {
		return resyncRun{}, err
	}
	run := resyncRun{secs: time.Since(start).Seconds()}
	cpu, err := cpuSince(cpu0)
	if err != nil {
		return resyncRun{}, err
	}
	run.cpu = cpu.servers + cpu.self
	if _, err := ph.stop(); err != nil {
		return resyncRun{}, err
	}
	run.peak = ph.peak
	if run.timeline, err = timeline(ctx, sl, "bench", t0); err != nil {
		return run, err
	}
	// Not timed: what the flow does once the resync is done (the swapped
	// tables' statistics, dropping the tables a swap set aside) ends
	// before the next step starts, rather than slow its beginning.
	return run, waitFor(ctx, sl, "SELECT bool_and(step = 'streaming') FROM mirror_tables WHERE mirror = 'bench'")
}

// timeline returns mirror's events since t0 (the catalog's clock), one
// line each, at its offset from t0.
func timeline(ctx context.Context, sl *pgx.Conn, mirror string, t0 time.Time) (string, error) {
	rows, err := sl.Query(ctx, "SELECT extract(epoch FROM at - $2)::float8, message FROM mirror_events WHERE mirror = $1 AND at >= $2 ORDER BY at",
		mirror, t0)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for rows.Next() {
		var off float64
		var msg string
		if err := rows.Scan(&off, &msg); err != nil {
			return "", err
		}
		if len(msg) > 70 {
			msg = msg[:70] + "..."
		}
		fmt.Fprintf(&b, "\n  %6.2f s  %s", off, msg)
	}
	return b.String(), rows.Err()
}

// probe is a reader polling the destination table during a resync.
type probe struct {
	longest        time.Duration
	empties, errs  int
	quit, finished chan struct{}
}

func startReader(ctx context.Context, url string, rows int64) (*probe, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	p := &probe{quit: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		defer conn.Close(context.Background())
		for i := int64(0); ; i++ {
			select {
			case <-p.quit:
				return
			default:
			}
			from := (i*7919)%max(rows-100, 1) + 1
			began := time.Now()
			var n int64
			err := conn.QueryRow(ctx, "SELECT count(*) FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1 + 99", from).Scan(&n)
			p.longest = max(p.longest, time.Since(began))
			switch {
			case err != nil:
				p.errs++
			case n == 0:
				p.empties++
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return p, nil
}

func (p *probe) stop() {
	close(p.quit)
	<-p.finished
}
