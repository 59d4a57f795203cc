package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/sluicedb/sluice/connectors"
)

// The owner's side of a load run as jobs (jobs.go): loadWithJobs enqueues
// the partitions, at most its window at a time (load_window.go: from one
// up to snapshot_max_parallel_workers, as they pay; so a mirror's load
// puts the same load on its source and destination whichever nodes run
// it), and waits for them while holding the snapshot they read under. Its
// semantics are the in-process workers' (runWorkers): the first failed
// attempt fails the load, which the flow's retry starts over as a resumed
// load; its end, whatever it is, cancels the jobs still queued or running
// and waits for them to stop.
// Only attempts cut off by a node's death or stop are retried as jobs,
// unseen by the owner.

const (
	// loadPoll is how often the owner reads its load's jobs (partitions
	// loaded on this node are seen at once: localLoad.loaded). A partition
	// loaded on another node is seen at the next poll, and the next one
	// enqueued then: with one partition at a time (load_window.go), each
	// of those waited half a poll on average. The read finds the load's
	// jobs by River's index of their arguments.
	loadPoll = 50 * time.Millisecond
	// loadEndTimeout bounds the wait for a load's cancelled jobs to stop.
	loadEndTimeout = 30 * time.Second
)

// loadWithJobs loads jobs (of tables whose progress is progress, by table
// index) as load_partition jobs reading under snapshot; see the file's
// comment.
func (f *flow) loadWithJobs(ctx context.Context, snapshot string, jobs []copyJob, progress []*tableProgress) (err error) {
	e, store := f.e, f.store
	load := RandomNodeID() + RandomNodeID()
	if err := f.cancelJobs(ctx, load); err != nil {
		return err
	}
	byTable := make(map[string]*tableProgress, len(progress))
	for _, p := range progress {
		byTable[p.name] = p
	}
	local := &localLoad{progress: byTable, loaded: make(chan loadedPartition, len(jobs))}
	e.mu.Lock()
	if e.loads == nil {
		e.loads = map[string]*localLoad{}
	}
	e.loads[load] = local
	e.mu.Unlock()
	defer func() {
		// A load done has nothing left to stop: every partition is
		// recorded done, by its job's completion or by this node's own
		// worker (whose job may not be marked completed yet: River
		// records completions in batches, and waiting for that, or
		// cancelling it, would delay the load's end for nothing).
		if err != nil {
			f.endLoad(ctx, load)
		}
		e.mu.Lock()
		delete(e.loads, load)
		e.mu.Unlock()
		e.jobs.conns.drop(load, false)
	}()

	type key struct {
		table string
		part  int
	}
	args := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		args[i] = river.InsertManyParams{Args: loadPartitionArgs{Mirror: f.m.Name, Table: j.job.Table.Source.String(),
			Partition: j.job.Index, Load: load, Bounds: j.job.Partition, Snapshot: snapshot, Version: j.job.Version,
			Upsert: j.job.Upsert, Dest: j.job.Table, Epoch: j.job.Epoch}}
	}
	window := newLoadWindow(f.opt.MaxParallelWorkers) // load_window.go
	next := 0
	counted := map[key]bool{}
	var doneRows int64
	done := func(k key, rows int64) error {
		if counted[k] {
			return nil
		}
		counted[k] = true
		doneRows += rows
		if p := byTable[k.table]; p != nil {
			p.end(k.part, rows)
			return p.flush(ctx, store, f.m.Name)
		}
		return nil
	}
	tick := time.NewTicker(loadPoll)
	defer tick.Stop()
	for {
		states, err := store.LoadJobs(ctx, loadPartitionKind, f.m.Name, load)
		if err != nil {
			return err
		}
		open := 0
		for _, s := range states {
			k := key{s.Table, s.Partition}
			switch s.State {
			case "completed":
				if err := done(k, s.Rows); err != nil {
					return err
				}
			case "retryable", "discarded", "cancelled":
				err := fmt.Errorf("copy %s partition %d (on node %s): %s", s.Table, s.Partition, s.Node, s.Error)
				if strings.Contains(s.Error, connectors.ErrFenced.Error()) {
					// Refused by the destination: a later owner claimed it.
					return &fencedLoadError{err: err}
				}
				return err
			default:
				if !counted[k] { // loaded here, its job not yet recorded completed
					open++
				}
			}
		}
		if len(counted) == len(jobs) {
			return nil
		}
		state := loadState{rows: doneRows, open: open, pending: len(args) - next, done: len(counted), doneRow: doneRows}
		for _, p := range byTable {
			state.rows += p.inFlight()
		}
		was := window.n
		if now := window.next(time.Now(), state); now != was {
			msg := window.describe()
			f.log.InfoContext(ctx, "load window: "+msg)
			if err := store.AddEvent(ctx, f.m.Name, "snapshot", msg); err != nil {
				return err
			}
		}
		if n := min(window.n-open, len(args)-next); n > 0 {
			if err := e.jobs.insertLoad(ctx, args[next:next+n]); err != nil {
				return fmt.Errorf("enqueue the load's partitions: %w", err)
			}
			next += n
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case lp := <-local.loaded:
			if err := done(key{lp.table, lp.partition}, lp.rows); err != nil {
				return err
			}
		}
	}
}

// fencedLoadError is the error of a load whose partition the destination
// refused because a later lease epoch claimed it (the job's recorded
// error names connectors.ErrFenced): it wraps ErrFenced, so the flow
// stops as for a lost lease, without retrying.
type fencedLoadError struct{ err error }

func (e *fencedLoadError) Error() string        { return e.err.Error() }
func (e *fencedLoadError) Is(target error) bool { return target == connectors.ErrFenced }

// cancelJobs cancels the mirror's jobs of loads other than load that may
// still run: an earlier load of the mirror ended (its owner cancelled them
// then, unless it died), and its snapshot with it.
func (f *flow) cancelJobs(ctx context.Context, load string) error {
	ids, err := f.store.StaleLoadJobs(ctx, loadPartitionKind, f.m.Name, load)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := f.e.jobs.client.JobCancel(ctx, id); err != nil && !errors.Is(err, river.ErrNotFound) {
			return fmt.Errorf("cancel an earlier load's partition: %w", err)
		}
	}
	return nil
}

// endLoad cancels the load's jobs still queued or running, and waits (at
// most loadEndTimeout) until none runs on a live node, so that a flow
// stopped (PAUSE, DROP MIRROR) leaves no copy writing behind it.
func (f *flow) endLoad(ctx context.Context, load string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadEndTimeout)
	defer cancel()
	cancelled := map[int64]bool{}
	for {
		states, err := f.store.LoadJobs(ctx, loadPartitionKind, f.m.Name, load)
		if err != nil {
			f.log.ErrorContext(ctx, "end the load's jobs", "err", err)
			return
		}
		running := 0
		for _, s := range states {
			switch s.State {
			case "completed", "cancelled", "discarded":
				continue
			case "running":
				running++
			}
			if !cancelled[s.ID] {
				cancelled[s.ID] = true
				if _, err := f.e.jobs.client.JobCancel(ctx, s.ID); err != nil && !errors.Is(err, river.ErrNotFound) {
					f.log.ErrorContext(ctx, "cancel the load's partition", "table", s.Table, "partition", s.Partition, "err", err)
				}
			}
		}
		if running == 0 {
			return
		}
		select {
		case <-ctx.Done():
			f.log.ErrorContext(ctx, "the load's partitions still run", "partitions", running)
			return
		case <-time.After(loadPoll):
		}
	}
}

// jobsRunning reports whether the flow's loads run as jobs: in a started
// engine (every sluice serve); an engine never started (tests of the
// flows) loads with in-process workers.
func (f *flow) jobsRunning() bool {
	if f.e == nil {
		return false
	}
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	return f.e.jobs != nil
}
