package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Config is what the engine needs from the rest of Sluice.
type Config struct {
	// Store is the catalog, where every flow keeps its state; required.
	Store *catalog.Store
	// Kinds are the kinds of peers the server knows; required. A mirror's
	// peers are opened through them, so a flow never asks which database
	// it talks to.
	Kinds *connectors.Registry
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Observer receives the flows' measures (observer.go); nil: none
	// listens.
	Observer Observer
	// Node is this process's node id in the cluster of processes sharing
	// the catalog (cluster.go, docs/cluster.md); "": a random one, a node
	// that lives as long as the process.
	Node string
	// Address is the node's SQL listen address, shown in the nodes status
	// table.
	Address string
	// NodeTimeout is how long a node may be silent before it is gone and
	// the leases of its streams expire; 0: DefaultNodeTimeout.
	NodeTimeout time.Duration
	// IgnoreLeaseLoss is fault injection for tests, never for use: the
	// node does not stop a flow whose lease it lost (the heartbeat's
	// renewal and the watchdog) and retries a flow step the catalog
	// refused for a stale lease instead of stopping, as a node would that
	// wrongly believes it still owns its streams (a bug, a clock that
	// jumped). It shows that the destination's fence alone keeps such a
	// node from applying anything (docs/cluster.md#fencing-a-node-that-wakes-up).
	IgnoreLeaseLoss bool
	// Periodic is the work the cluster does periodically on one node of
	// all, as River periodic jobs (periodic_jobs.go); each node's engine
	// must be given the same.
	Periodic []PeriodicWork
}

// Validate reports a config that cannot work, and sets defaults.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("replication: catalog store is required")
	}
	if c.Kinds == nil {
		return errors.New("replication: peer kinds (a connectors.Registry) are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Node == "" {
		c.Node = RandomNodeID()
	}
	if c.NodeTimeout == 0 {
		c.NodeTimeout = DefaultNodeTimeout
	}
	if c.NodeTimeout < MinNodeTimeout {
		return fmt.Errorf("replication: node timeout %s is below the minimum %s", c.NodeTimeout, MinNodeTimeout)
	}
	return validatePeriodic(c.Periodic)
}

// Engine runs the mirrors' flows: one runner goroutine per mirror, on the
// node that holds the mirror's stream lease (cluster.go), drives it
// through its phases, SETUP -> SNAPSHOT -> CDC (and RESYNC for a full
// resync), each a resumable step whose progress lives in the catalog and,
// for what must commit atomically with the data, in the destination's
// metadata. A failing step records the error (the mirror shows FAILED)
// and is retried with backoff; the error clears when a step succeeds or
// makes progress. An error that needs the user stops the retries until the
// user acts. Safe for concurrent use.
type Engine struct {
	cfg Config

	mu      sync.Mutex
	base    context.Context // nil until Start
	runners map[string]*runner
	// bgStop stops the node's heartbeat, watchdog and listener
	// (cluster.go) and bgDone is closed when they have ended; nil until
	// Start.
	bgStop context.CancelFunc
	bgDone chan struct{}
	// closed: Close was called; no runner starts any more.
	closed bool
	// lookNow asks the heartbeat goroutine to look for free streams now
	// (another node freed one: cluster.go); buffered, one pending at most.
	lookNow chan struct{}
	// lastHandOver is when this node last gave a stream up to balance the
	// nodes, or started (guarded by mu).
	lastHandOver time.Time
	// stopping is done once, before the first lease a stopping node frees.
	stopping sync.Once
	// jobs is the node's River client (jobs.go); nil until Start, and in
	// an engine never started, whose flows load in-process.
	jobs *jobs
	// loads holds the loads this node owns, by load id, for the
	// partitions this node works (jobs.go).
	loads map[string]*localLoad
}

type runner struct {
	cancel context.CancelFunc
	done   chan struct{}
	// statement: a statement asked for the run (Run), which may take a
	// lease a Stop reserved; the node's periodic look may not.
	statement bool
	// lease is the stream lease the runner holds (zero until it acquired
	// one), and renewed when the last renewal that succeeded was sent
	// (the local clock); reserve: give the lease up reserved (Stop). All
	// three guarded by Engine.mu.
	lease   catalog.Lease
	renewed time.Time
	reserve bool
	// lost: the lease is lost or stale and the runner was told to stop
	// (guarded by Engine.mu).
	lost bool
	// handOver: the runner was stopped to give its stream to another node
	// (balance, cluster.go); guarded by Engine.mu.
	handOver bool
	// tried is closed once the runner's attempt to acquire the lease is
	// over, taken (lease set) or not.
	tried chan struct{}
	// validating counts the VALIDATE MIRROR requests under way on the
	// flow: a stream is not handed over for balance meanwhile.
	validating atomic.Int32
	// wake tells the flow to look for requests now (see Wake).
	wake chan struct{}
	// validate hands VALIDATE MIRROR requests to the streaming flow
	// (Validate); unbuffered: a request is taken or refused.
	validate chan *validation
}

// New returns an engine; nothing runs until Start.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, lookNow: make(chan struct{}, 1)}, nil
}

// Start registers this node in the catalog (freeing the leases of its
// earlier run), starts its River client, which works the cluster's jobs
// (jobs.go), and its heartbeat (cluster.go), and resumes the mirrors
// whose operator wants them running and whose lease is free, up to its
// fair share when other nodes are alive (look). Runners stop when ctx
// ends (Close waits for them). Call it once.
func (e *Engine) Start(ctx context.Context) error {
	store := e.cfg.Store
	if err := store.RegisterNode(ctx, e.cfg.Node, e.cfg.Address, e.cfg.NodeTimeout); err != nil {
		return err
	}
	j, err := e.startJobs(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.base = ctx
	e.lastHandOver = time.Now()
	e.jobs = j
	e.mu.Unlock()
	if err := e.look(ctx); err != nil {
		e.stopJobs(j)
		return err
	}
	e.startNode(ctx)
	return nil
}

// Close stops every runner and waits for them; the node is marked
// stopping and their leases are released free, each with a notification
// to the other nodes, which take them at once (cluster.go). It then stops
// the node's River client (jobs it was running go back to the queue) and
// records the node as stopped. A process ending its Start context
// (SIGTERM) does the same as its runners end, before Close.
func (e *Engine) Close() {
	e.mu.Lock()
	stop, done := e.bgStop, e.bgDone
	e.closed = true
	e.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	e.mu.Lock()
	runners := e.runners
	e.runners = nil
	e.mu.Unlock()
	for _, r := range runners {
		r.cancel()
	}
	for _, r := range runners {
		<-r.done
	}
	e.mu.Lock()
	j := e.jobs
	e.mu.Unlock()
	if j != nil {
		e.stopJobs(j)
	}
	if stop != nil {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		if err := e.cfg.Store.StopNode(ctx, e.cfg.Node); err != nil {
			e.cfg.Logger.ErrorContext(ctx, "record the node stopped", "node", e.cfg.Node, "err", err)
		}
	}
}

// Run runs the mirror's flow here unless it is already running here, the
// engine was not started (a server that only serves statements), another
// node holds the mirror's live stream lease (that node runs it), or the
// lease is free and unreserved while this node runs its share and another
// node less (that node takes it: balance.go). The lease is taken by the
// runner, asynchronously. Idempotent.
func (e *Engine) Run(name string) {
	e.start(name, true)
}

// start starts a runner for the mirror unless one runs, and returns it
// (nil when none started); statement: see runner.statement.
func (e *Engine) start(name string, statement bool) *runner {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.base == nil || e.base.Err() != nil || e.closed {
		return nil
	}
	if e.runners == nil {
		e.runners = make(map[string]*runner)
	}
	if _, ok := e.runners[name]; ok {
		return nil
	}
	ctx, cancel := context.WithCancel(e.base)
	r := &runner{cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1), validate: make(chan *validation),
		statement: statement, tried: make(chan struct{})}
	e.runners[name] = r
	go func() {
		defer close(r.done)
		ok := false
		var lease catalog.Lease
		if !statement || !e.placeElsewhere(ctx, name) {
			lease, ok = e.acquire(ctx, name, r)
		}
		close(r.tried)
		if ok {
			e.run(catalog.WithLease(ctx, lease), name, r.wake, r.validate)
			e.release(name, r)
		}
		e.mu.Lock()
		if e.runners[name] == r {
			delete(e.runners, name)
		}
		e.mu.Unlock()
	}()
	return r
}

// Stop makes sure no node runs the mirror's flow, and waits until none
// does: its runner here is stopped, and a node holding its lease
// elsewhere is asked to stop (cluster.go). The lease is left free and
// reserved for a while, so that the caller, a statement, changes the
// mirror before a node's periodic look runs it again; Run takes it at
// once. It fails, after NodeTimeout and a little more, when another node
// neither releases the lease nor lets it expire. Idempotent.
func (e *Engine) Stop(name string) error {
	e.stopLocal(name, true)
	e.mu.Lock()
	started := e.base != nil
	e.mu.Unlock()
	if !started {
		return nil
	}
	return e.stopElsewhere(name)
}

// stopLocal stops the mirror's runner here, if any, and waits for it;
// reserve: its lease is released reserved (see Stop).
func (e *Engine) stopLocal(name string, reserve bool) {
	e.mu.Lock()
	r := e.runners[name]
	delete(e.runners, name)
	if r != nil {
		r.reserve = reserve
	}
	e.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// Wake tells the mirror's running flow to look for requests recorded in
// the catalog (a table resync, options ALTER MIRROR changed: see
// live_options.go) now rather than at its next poll; a flow running on
// another node is told through the catalog (Notify). Idempotent; it never
// blocks.
func (e *Engine) Wake(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.runners[name]
	if r != nil {
		select {
		case r.wake <- struct{}{}:
		default: // already told
		}
	}
	if (r == nil || r.lease.Epoch == 0) && e.base != nil {
		// Not running here, or not yet: a runner still taking the lease
		// reads the requests when it starts, or leaves the mirror to the
		// node that holds it, which is told.
		go e.wakeElsewhere(name)
	}
}

// Running reports whether the mirror has a runner.
func (e *Engine) Running(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.runners[name]
	return ok
}

const (
	minBackoff = time.Second
	// maxBackoff caps the delay between retries, so a step is retried
	// within seconds of a peer answering again, however long it was away.
	maxBackoff = 10 * time.Second
)

// run drives one mirror until its context ends, it is paused or dropped, or
// it completes.
func (e *Engine) run(ctx context.Context, name string, wake <-chan struct{}, validate <-chan *validation) {
	log := e.cfg.Logger.With("mirror", name)
	store := e.cfg.Store
	var acked connectors.Position // by the runner's attempts, one at a time
	var early earlyBackoff
	retry(ctx, retryDeps{
		load: func(ctx context.Context) (catalog.Mirror, error) { return store.GetMirror(ctx, name) },
		step: func(ctx context.Context, m catalog.Mirror, progress func()) error {
			f := &flow{e: e, store: store, m: m, opt: ParseOptions(m.Options), log: log, onProgress: progress, wake: wake,
				validations: validate, acked: &acked, early: &early}
			return f.step(ctx)
		},
		record: func(ctx context.Context, err error) error {
			if NeedsUser(err) {
				e.cfg.Observer.Error(name, ErrorNeedsUser)
				return store.SetActionError(ctx, name, err.Error())
			}
			e.cfg.Observer.Error(name, ErrorRetried)
			return store.SetError(ctx, name, err.Error())
		},
		sleep: func(ctx context.Context, d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
				return true
			}
		},
		fenced:          func(ctx context.Context, err error) { fencedEvent(ctx, store, name, e.cfg.Node, err) },
		ignoreLeaseLoss: e.cfg.IgnoreLeaseLoss,
		log:             log,
	})
}

// retryDeps is what the retry loop needs: the real catalog and flows in
// run, fakes in tests.
type retryDeps struct {
	// load reads the mirror from the catalog.
	load func(ctx context.Context) (catalog.Mirror, error)
	// step runs the mirror's current phase; it calls progress (from its own
	// goroutine) once it has made progress, such as a batch applied or the
	// stream's position acknowledged.
	step func(ctx context.Context, m catalog.Mirror, progress func()) error
	// record stores a failing step's error.
	record func(ctx context.Context, err error) error
	// sleep waits d, or until ctx ends (false).
	sleep func(ctx context.Context, d time.Duration) bool
	// fenced records that a step stopped with connectors.ErrFenced (nil:
	// nothing is recorded).
	fenced func(ctx context.Context, err error)
	// ignoreLeaseLoss retries a step that failed with catalog.ErrLeaseLost
	// like any other (Config.IgnoreLeaseLoss, fault injection).
	ignoreLeaseLoss bool
	log             interface {
		ErrorContext(ctx context.Context, msg string, args ...any)
		InfoContext(ctx context.Context, msg string, args ...any)
	}
}

// retry runs a mirror's steps until ctx ends, the mirror is paused,
// dropped or done. A failing step is retried with a delay that doubles
// from minBackoff to maxBackoff and starts over once a step made progress,
// so each outage is waited out from the shortest delay. An error that
// needs the user (NeedsUser) is recorded and the mirror waits, without
// retrying, until the user acts: PAUSE, RESUME and RESYNC MIRROR restart
// the runner, DROP MIRROR ends it. While the catalog cannot be read,
// nothing is recorded (the error recorded before stays).
func retry(ctx context.Context, d retryDeps) {
	backoff := minBackoff
	for ctx.Err() == nil {
		m, err := d.load(ctx)
		if errors.Is(err, catalog.ErrMirrorNotFound) {
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.ErrorContext(ctx, "read mirror from the catalog", "err", err, "retry_in", backoff)
			if !d.sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		if m.Desired != catalog.DesiredRunning {
			return
		}
		if m.ErrorNeedsAction {
			d.log.InfoContext(ctx, "mirror waits for the user", "error", m.Error)
			<-ctx.Done()
			return
		}
		var progressed atomic.Bool
		err = protect(func() error { return d.step(ctx, m, func() { progressed.Store(true) }) })
		if pe := (*PanicError)(nil); errors.As(err, &pe) {
			d.log.ErrorContext(ctx, "mirror flow panicked", "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
		}
		if errors.Is(err, errFlowDone) {
			return
		}
		if errors.Is(err, connectors.ErrFenced) {
			// A later lease epoch claimed the destination: another node
			// runs the mirror, and this one applied nothing (fence.go).
			d.log.ErrorContext(ctx, "mirror flow stopped: the destination is claimed by a later lease epoch", "err", err)
			if d.fenced != nil {
				d.fenced(ctx, err)
			}
			return
		}
		if errors.Is(err, catalog.ErrLeaseLost) && !d.ignoreLeaseLoss {
			// Another node runs the mirror now: nothing more to do here,
			// not even recording the error (fenced too).
			d.log.ErrorContext(ctx, "mirror flow stopped: its stream lease was lost", "err", err)
			return
		}
		if err == nil || progressed.Load() {
			backoff = minBackoff
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if NeedsUser(err) {
			d.log.ErrorContext(ctx, "mirror step failed: waiting for the user", "err", err)
			if serr := d.record(ctx, err); serr == nil {
				continue // parks, from the catalog's record
			} else if ctx.Err() == nil {
				d.log.ErrorContext(ctx, "record mirror error", "err", serr)
			}
		} else {
			d.log.ErrorContext(ctx, "mirror step failed", "err", err, "retry_in", backoff)
			if serr := d.record(ctx, err); serr != nil && ctx.Err() == nil {
				d.log.ErrorContext(ctx, "record mirror error", "err", serr)
			}
		}
		if !d.sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// errFlowDone ends a runner whose mirror has nothing more to do.
var errFlowDone = errors.New("flow done")

// UserError is a step's error that retrying cannot cure: the user must act
// (its message says how).
type UserError struct{ Err error }

func (e *UserError) Error() string { return e.Err.Error() }
func (e *UserError) Unwrap() error { return e.Err }

// NeedsUser reports whether err (or an error it wraps) needs the user.
func NeedsUser(err error) bool {
	var u *UserError
	return errors.As(err, &u)
}

// LostStreamError is the error of a mirror whose change stream the source
// discarded (a Postgres slot invalidated): only a resync recovers. It
// needs the user.
func LostStreamError(mirror, slot, peer string) error {
	return &UserError{Err: fmt.Errorf("replication slot %q on peer %q was invalidated: the source removed WAL the slot "+
		"still needed (max_slot_wal_keep_size exceeded), so changes since the mirror's position are lost; "+
		"RESYNC MIRROR %s recovers the mirror by reloading it", slot, peer, mirror)}
}
