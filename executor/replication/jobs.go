package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// The cluster's finite work as River jobs (docs/cluster.md#jobs). Every
// node runs a River client on the catalog (River's tables are in schema
// sluice, migrated with the catalog: catalog/river.go), with the node's id
// as the client's id, so that each attempt records the node that ran it
// (river_job.attempted_by, shown in the jobs status table).
//
// A partition of an initial load (or of a resync's load) is a
// load_partition job: the load's owner, the node running the mirror's
// flow, enqueues its partitions and waits for them (load_jobs.go); any
// node's client works them (loadPartition).
//
// When a node dies, its running jobs are made available again by the
// other nodes as soon as the node is gone (silent for its node timeout):
// each node looks every heartbeat interval (rescueJobs). River's own
// rescuer, which cannot tell a dead node's job from a slow partition,
// only backs this up after RescueStuckJobsAfter.

const (
	// loadQueue is the River queue of load_partition jobs.
	loadQueue = "sluice_load"
	// loadPartitionKind is the kind of a partition's job.
	loadPartitionKind = "load_partition"
	// jobWorkers is how many jobs a node runs at once. A mirror's load
	// keeps at most snapshot_max_parallel_workers of its partitions
	// enqueued (load_jobs.go), so this caps only several loads together.
	jobWorkers = 32
	// jobTimeout bounds one partition's load: far above what a partition
	// of the default size takes, since a job that times out is only
	// tried again.
	jobTimeout = time.Hour
	// rescueStuckAfter is when River's own rescuer redoes a running job;
	// a dead node's jobs are redone well before by rescueJobs.
	rescueStuckAfter = jobTimeout + 10*time.Minute
	// jobMaxAttempts caps a job's attempts; a load's owner gives up on
	// the first failed attempt anyway (load_jobs.go), so more only serve
	// attempts cut off by a node's death or stop.
	jobMaxAttempts = 25
	// JobsCatalogConns caps the catalog connections of a node's River
	// client, a pool of their own (catalog.Store.RiverPool).
	JobsCatalogConns = 8
	// jobFetchCooldown is the least time between two fetches of a node's
	// client (River's default, 100 ms, delays each partition enqueued
	// behind one that just ended).
	jobFetchCooldown = 10 * time.Millisecond
	// jobsStopTimeout bounds River's stop when the node stops.
	jobsStopTimeout = 10 * time.Second
)

// loadPartitionArgs is a load_partition job: one partition of a table's
// load, with all its worker needs to load it on any node. Unique per
// mirror, table, partition and load (the "unique" fields): a load is one
// run of the owner's loadTables, identified by a random id, so a load
// started over (after an error, or by a new owner) has jobs of its own and
// cancels the earlier ones.
type loadPartitionArgs struct {
	Mirror    string `json:"mirror" river:"unique"`
	Table     string `json:"table" river:"unique"` // the source table
	Partition int    `json:"partition" river:"unique"`
	Load      string `json:"load" river:"unique"`
	// Bounds is the partition, as the source's plan encoded it.
	Bounds connectors.Partition `json:"bounds"`
	// Snapshot is the source snapshot to read under ("": a fresh one,
	// with Upsert); it stays valid while the load's owner holds it open,
	// and the load's jobs are cancelled once it ends.
	Snapshot string               `json:"snapshot"`
	Version  uint64               `json:"version"`
	Upsert   bool                 `json:"upsert"`
	Dest     connectors.DestTable `json:"dest"`
	// Epoch is the lease epoch of the owner that planned the load: the
	// destination refuses the partition once a later epoch claimed it
	// (connectors.LoadJob.Epoch), and the job is cancelled. A job queued
	// by a Sluice before epochs has none (0) and is not checked.
	Epoch int64 `json:"epoch,omitempty"`
}

// Kind implements river.JobArgs.
func (loadPartitionArgs) Kind() string { return loadPartitionKind }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (loadPartitionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: loadQueue, MaxAttempts: jobMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// loadOutput is what a completed load_partition job records (River's job
// output): the rows it loaded, for its owner's progress.
type loadOutput struct {
	Rows int64 `json:"rows"`
}

// loadWorker works load_partition jobs.
type loadWorker struct {
	river.WorkerDefaults[loadPartitionArgs]
	e     *Engine
	conns *connCache
}

// Work implements river.Worker.
func (w *loadWorker) Work(ctx context.Context, job *river.Job[loadPartitionArgs]) error {
	err := w.e.loadPartition(ctx, w.conns, job.Args)
	if errors.Is(err, connectors.ErrFenced) {
		// A later owner claimed the destination: this load is stale,
		// and an attempt again would be refused again. Its owner stops
		// the load (load_jobs.go).
		return river.JobCancel(err)
	}
	if err != nil && ctx.Err() != nil && !errors.Is(context.Cause(ctx), rivertype.ErrJobCancelledRemotely) &&
		!errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		// This node stops: the partition goes back to the queue, for
		// another node, without counting as a failure.
		return river.JobSnooze(0)
	}
	return err
}

// jobRetryPolicy retries a failed job after 1 s, doubling to at most 10 s,
// as the flows retry their steps.
type jobRetryPolicy struct{}

// NextRetry implements river.ClientRetryPolicy.
func (jobRetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	d := minBackoff << min(max(job.Attempt-1, 0), 4)
	return time.Now().Add(min(d, maxBackoff))
}

// jobs is the node's River client and what it needs.
type jobs struct {
	client *river.Client[pgx.Tx]
	pool   *pgxpool.Pool
	conns  connCache // see job_conns.go
	stop   context.CancelFunc
	done   chan struct{} // closed when the rescue loop ended

	insertMu   sync.Mutex
	lastInsert time.Time // of insertLoad
}

// insertLoad enqueues load_partition jobs. River tells the nodes'
// producers of an insert (NOTIFY) at most once per queue per FetchCooldown
// of the inserting client and drops the rest: a job inserted within
// jobFetchCooldown of the one before waits for the producers' next poll,
// a second later. When two partitions of a load end together, the second
// one's successor waited so, its worker idle: on pgbench_accounts loaded
// with 2 workers in 4 partitions, 0.9 s of a 4 s load. So this node's
// inserts are spaced jobFetchCooldown apart, each one announced.
func (j *jobs) insertLoad(ctx context.Context, params []river.InsertManyParams) error {
	j.insertMu.Lock()
	defer j.insertMu.Unlock()
	if wait := time.Until(j.lastInsert.Add(jobFetchCooldown + time.Millisecond)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	_, err := j.client.InsertMany(ctx, params)
	j.lastInsert = time.Now()
	return err
}

// startJobs starts the node's River client, after making its earlier
// run's running jobs available again (that run is over), and the loop that
// redoes gone nodes' jobs.
func (e *Engine) startJobs(ctx context.Context) (*jobs, error) {
	store := e.cfg.Store
	if n, err := store.RescueJobs(ctx, e.cfg.Node); err != nil {
		return nil, err
	} else if n > 0 {
		e.cfg.Logger.InfoContext(ctx, "jobs of this node's earlier run made available again", "jobs", n)
	}
	pool, err := store.RiverPool(ctx, JobsCatalogConns)
	if err != nil {
		return nil, err
	}
	j := &jobs{pool: pool, done: make(chan struct{})}
	workers := river.NewWorkers()
	river.AddWorker(workers, &loadWorker{e: e, conns: &j.conns})
	periodic := addPeriodic(workers, e.cfg.Periodic) // periodic_jobs.go
	river.AddWorker(workers, &validateWorker{e: e})  // validate_jobs.go
	queues := map[string]river.QueueConfig{loadQueue: {MaxWorkers: jobWorkers}, periodicQueue: {MaxWorkers: periodicWorkers},
		nodeQueue(e.cfg.Node): {MaxWorkers: nodeWorkers}}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:                   e.cfg.Node,
		Schema:               catalog.RiverSchema,
		Logger:               e.cfg.Logger.With("component", "jobs"),
		Queues:               queues,
		Workers:              workers,
		PeriodicJobs:         periodic,
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: rescueStuckAfter,
		RetryPolicy:          jobRetryPolicy{},
		FetchCooldown:        jobFetchCooldown,
		MaxAttempts:          jobMaxAttempts,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("start jobs: %w", err)
	}
	rctx, stop := context.WithCancel(ctx)
	j.client, j.stop = client, stop
	go func() {
		defer close(j.done)
		e.rescueJobs(rctx, j)
	}()
	return j, nil
}

// stopJobs stops the node's River client: jobs still running (of loads
// other nodes own; this node's loads ended with its flows) are cut off and
// go back to the queue for the other nodes.
func (e *Engine) stopJobs(j *jobs) {
	j.stop()
	<-j.done
	ctx, cancel := context.WithTimeout(context.Background(), jobsStopTimeout)
	defer cancel()
	if err := j.client.StopAndCancel(ctx); err != nil {
		e.cfg.Logger.ErrorContext(ctx, "stop jobs", "err", err)
	}
	j.conns.drop("", false)
	j.pool.Close()
}

// rescueJobs makes the running jobs of gone nodes available again, moves
// waiting validations to their mirror's node (routeValidations), and
// closes the connections of loads idle for connIdle (j.conns), every
// heartbeat interval, until ctx ends. Every node does it; a job is
// rescued once (the update needs it running).
func (e *Engine) rescueJobs(ctx context.Context, j *jobs) {
	conns := &j.conns
	tick := time.NewTicker(e.heartbeatEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		conns.drop("", true)
		n, err := e.cfg.Store.RescueJobs(ctx, "")
		if err != nil {
			if ctx.Err() == nil {
				e.cfg.Logger.WarnContext(ctx, "redo the jobs of gone nodes", "err", err)
			}
			continue
		}
		if n > 0 {
			e.cfg.Logger.InfoContext(ctx, "jobs of gone nodes made available again", "jobs", n)
		}
		if err := e.routeValidations(ctx, j); err != nil && ctx.Err() == nil {
			e.cfg.Logger.WarnContext(ctx, "move waiting validations to their mirror's node", "err", err)
		}
	}
}

// loadPartition loads one partition of a load on this node, with what an
// earlier partition of the load opened here or opening it (openPartition):
// it reads the partition under the load's snapshot and loads it with the
// destination's Loader, which records it done in the same transaction. A
// partition the destination already records done (an attempt that
// committed just before its node died) is not loaded again.
func (e *Engine) loadPartition(ctx context.Context, conns *connCache, a loadPartitionArgs) error {
	c := conns.take(a.Load)
	if c == nil {
		var err error
		if c, err = e.openPartition(ctx, a); err != nil {
			return err
		}
	}
	healthy := false
	defer func() {
		if healthy {
			conns.put(a.Load, c)
		} else {
			c.close()
		}
	}()
	done, err := c.dst.Loaded(ctx, a.Dest.Source)
	if err != nil {
		return err
	}
	if rows, ok := done[a.Partition]; ok {
		healthy = true
		e.partitionLoaded(a, rows)
		return river.RecordOutput(ctx, loadOutput{Rows: rows})
	}
	job := connectors.LoadJob{Table: a.Dest, Index: a.Partition, Partition: a.Bounds, Upsert: a.Upsert,
		Version: a.Version, Progress: e.partitionProgress(a), Epoch: a.Epoch}
	rows, err := c.l.Load(ctx, c.r, job)
	if err != nil {
		return fmt.Errorf("copy %s partition %d: %w", a.Table, a.Partition, err)
	}
	if nk, ok := c.l.(connectors.NullKeyReporter); ok {
		for t, n := range nk.NullKeys() {
			if err := c.f.reportNullKeys(ctx, t, n); err != nil {
				return err
			}
		}
	}
	healthy = true
	c.f.log.DebugContext(ctx, "partition loaded", "table", a.Table, "partition", a.Partition, "rows", rows)
	e.partitionLoaded(a, rows)
	return river.RecordOutput(ctx, loadOutput{Rows: rows})
}

// openPartition opens what a's partition needs, as the flow opens its
// peers: the mirror's source and destination, a reader under the load's
// snapshot and a loader. A dropped mirror's job is cancelled.
func (e *Engine) openPartition(ctx context.Context, a loadPartitionArgs) (_ *partitionConns, err error) {
	store := e.cfg.Store
	m, err := store.GetMirror(ctx, a.Mirror)
	if errors.Is(err, catalog.ErrMirrorNotFound) {
		return nil, river.JobCancel(err)
	}
	if err != nil {
		return nil, err
	}
	f := &flow{e: e, store: store, m: m, opt: ParseOptions(m.Options), log: e.cfg.Logger.With("mirror", a.Mirror)}
	if err := f.peers(ctx); err != nil {
		return nil, err
	}
	src, dst, closeAll, err := f.open(ctx, "sluice-snapshot")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	r, l, err := openReaderLoader(ctx, src, dst, a.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("copy %s partition %d: %w", a.Table, a.Partition, err)
	}
	return &partitionConns{f: f, src: src, dst: dst, r: r, l: l}, nil
}

// localLoad is a load this node owns, as its partitions' jobs on this
// node see it.
type localLoad struct {
	// progress is the load's progress by source table: a partition copied
	// here moves rows_copied while its rows flow, as before jobs.
	progress map[string]*tableProgress
	// loaded receives the partitions loaded here as soon as their
	// transaction committed, before River records their jobs completed
	// (its completer writes in batches, a little later): the owner
	// enqueues the next partitions at once. Buffered for every partition
	// of the load; a send never blocks.
	loaded chan loadedPartition
}

// loadedPartition is a partition loaded, and its rows.
type loadedPartition struct {
	table     string
	partition int
	rows      int64
}

// localLoadOf returns the load of id if this node owns it, else nil.
func (e *Engine) localLoadOf(id string) *localLoad {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loads[id]
}

// partitionLoaded tells the load's owner, when it is this node, that a's
// partition is loaded.
func (e *Engine) partitionLoaded(a loadPartitionArgs, rows int64) {
	if l := e.localLoadOf(a.Load); l != nil {
		select {
		case l.loaded <- loadedPartition{table: a.Table, partition: a.Partition, rows: rows}:
		default: // told already (a partition redone)
		}
	}
}

// partitionProgress returns what a partition's copy calls with its rows
// so far: the owner's progress of the table when the load's owner is this
// node, and the test hook in any case.
func (e *Engine) partitionProgress(a loadPartitionArgs) func(rows int64) {
	var p *tableProgress
	if l := e.localLoadOf(a.Load); l != nil {
		p = l.progress[a.Table]
	}
	if p != nil {
		return p.begin(a.Mirror, a.Partition)
	}
	return func(rows int64) {
		if h := copyRowHook.Load(); h != nil {
			(*h)(a.Mirror, rows)
		}
	}
}
