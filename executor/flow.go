package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/postgres"
	"github.com/sluicedb/sluice/sqlext"
)

// The mirror flows. Each mirror has one runner goroutine that drives it
// through its phases, SETUP -> SNAPSHOT -> CDC, each a resumable step whose
// progress lives in the catalog (and, for what must commit atomically with
// the data, in the destination's metadata schema). A failing step records
// the error (the mirror shows FAILED) and is retried with backoff; the error
// clears when a step succeeds or makes progress (a "recovered" event says
// so only then). An error that needs the user stops the retries until the
// user acts.

// errFlowDone ends a runner whose mirror has nothing more to do.
var errFlowDone = errors.New("flow done")

// supervisor owns the runners. Safe for concurrent use.
type supervisor struct {
	ex *Executor

	mu      sync.Mutex
	base    context.Context // nil until Start
	runners map[string]*runner
}

type runner struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Start resumes every mirror whose operator wants it running, and starts
// the slot monitor (monitor.go). Runners and monitor stop when ctx ends
// (Close waits for them). Call it once.
func (e *Executor) Start(ctx context.Context) error {
	e.sup.mu.Lock()
	e.sup.base = ctx
	e.sup.mu.Unlock()
	mctx, stop := context.WithCancel(ctx)
	e.monStop, e.monDone = stop, make(chan struct{})
	go func() {
		defer close(e.monDone)
		e.monitor(mctx)
	}()
	e.checkCatalogCapacity(ctx)
	names, err := e.cfg.Store.MirrorNames(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		m, err := e.cfg.Store.GetMirror(ctx, name)
		if err != nil {
			return err
		}
		if m.Desired == catalog.DesiredRunning && m.Phase != phaseCompleted {
			e.sup.start(name)
		}
	}
	return nil
}

// Close stops every runner and waits for them, and closes the idle
// catalog connections of sessions.
func (e *Executor) Close() {
	e.sup.mu.Lock()
	runners := e.sup.runners
	e.sup.runners = nil
	e.sup.mu.Unlock()
	for _, r := range runners {
		r.cancel()
	}
	for _, r := range runners {
		<-r.done
	}
	if e.monDone != nil {
		e.monStop()
		<-e.monDone
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.pool.close(ctx)
}

// start runs the mirror's flow unless it is already running. Idempotent.
func (s *supervisor) start(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base == nil {
		return // not started (tests that only use the front end)
	}
	if s.runners == nil {
		s.runners = make(map[string]*runner)
	}
	if _, ok := s.runners[name]; ok {
		return
	}
	ctx, cancel := context.WithCancel(s.base)
	r := &runner{cancel: cancel, done: make(chan struct{})}
	s.runners[name] = r
	go func() {
		defer close(r.done)
		s.run(ctx, name)
		s.mu.Lock()
		if s.runners[name] == r {
			delete(s.runners, name)
		}
		s.mu.Unlock()
	}()
}

// stop stops the mirror's runner, if any, and waits for it. Idempotent.
func (s *supervisor) stop(name string) {
	s.mu.Lock()
	r := s.runners[name]
	delete(s.runners, name)
	s.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// running reports whether the mirror has a runner.
func (s *supervisor) running(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.runners[name]
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
func (s *supervisor) run(ctx context.Context, name string) {
	log := s.ex.cfg.Logger.With("mirror", name)
	store := s.ex.cfg.Store
	retry(ctx, retryDeps{
		load: func(ctx context.Context) (catalog.Mirror, error) { return store.GetMirror(ctx, name) },
		step: func(ctx context.Context, m catalog.Mirror, progress func()) error {
			f := &flow{ex: s.ex, m: m, cfg: configOf(m.Options), log: log, onProgress: progress}
			return f.step(ctx)
		},
		record: func(ctx context.Context, err error) error {
			if needsUser(err) {
				return store.SetActionError(ctx, name, err.Error())
			}
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
		log: log,
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
	log   interface {
		ErrorContext(ctx context.Context, msg string, args ...any)
		InfoContext(ctx context.Context, msg string, args ...any)
	}
}

// retry runs a mirror's steps until ctx ends, the mirror is paused,
// dropped or done. A failing step is retried with a delay that doubles
// from minBackoff to maxBackoff and starts over once a step made progress,
// so each outage is waited out from the shortest delay. An error that
// needs the user (needsUser) is recorded and the mirror waits, without
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
		err = d.step(ctx, m, func() { progressed.Store(true) })
		if errors.Is(err, errFlowDone) {
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
		if needsUser(err) {
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

// userError is a step's error that retrying cannot cure: the user must act
// (its message says how).
type userError struct{ err error }

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

// needsUser reports whether err (or an error it wraps) needs the user.
func needsUser(err error) bool {
	var u *userError
	return errors.As(err, &u)
}

// phaseCompleted marks a mirror with initial_copy_only whose copy is done.
const phaseCompleted = "COMPLETED"

// flow runs one step of one mirror.
type flow struct {
	ex  *Executor
	m   catalog.Mirror
	cfg mirrorConfig
	log interface {
		InfoContext(ctx context.Context, msg string, args ...any)
		ErrorContext(ctx context.Context, msg string, args ...any)
		DebugContext(ctx context.Context, msg string, args ...any)
	}
	src, dst *postgres.PeerConfig   // dst is nil for a ClickHouse destination
	ch       *clickhouse.PeerConfig // a ClickHouse destination
	meta     string
	// shadows maps, during a full resync's SETUP and SNAPSHOT, each live
	// destination table to the shadow table Sluice created and recorded
	// for it (see tables).
	shadows map[connectors.TableName]connectors.TableName

	// onProgress tells the supervisor the step made progress (nil: no one
	// listens); see progressed.
	onProgress   func()
	progressDone bool
}

// step runs the mirror's current phase to its end.
func (f *flow) step(ctx context.Context) error {
	if err := f.peers(ctx); err != nil {
		return err
	}
	if f.ch != nil {
		return f.stepClickHouse(ctx)
	}
	switch f.m.Phase {
	case catalog.PhaseSetup:
		return f.setup(ctx)
	case catalog.PhaseSnapshot:
		return f.snapshot(ctx, "")
	case catalog.PhaseCDC:
		return f.cdc(ctx)
	case catalog.PhaseResync:
		return f.swapAll(ctx)
	case phaseCompleted:
		return errFlowDone
	}
	return fmt.Errorf("mirror %q is in unknown phase %q", f.m.Name, f.m.Phase)
}

// peers loads the source and destination configurations.
func (f *flow) peers(ctx context.Context) error {
	var err error
	f.src, err = f.ex.postgresPeer(ctx, f.m.SourcePeer)
	if err != nil {
		return err
	}
	dst, err := f.ex.cfg.Store.GetPeer(ctx, f.m.DestinationPeer)
	if err != nil {
		return fmt.Errorf("load destination peer: %w", err)
	}
	if dst.Type == string(sqlext.PeerClickHouse) {
		f.ch, err = clickhouse.ParsePeerOptions(dst.Options)
		if err != nil {
			return fmt.Errorf("destination peer %q: %w", f.m.DestinationPeer, err)
		}
		return nil
	}
	f.dst, err = postgres.ParsePeerOptions(dst.Options)
	if err != nil {
		return fmt.Errorf("destination peer %q: %w", f.m.DestinationPeer, err)
	}
	f.meta = metadataSchema(dst.Options)
	return nil
}

// connect opens a connection to the source and one to the destination,
// both named appName; closeConns closes them.
func (f *flow) connect(ctx context.Context, appName string) (src, dst *pgx.Conn, closeConns func(), err error) {
	src, err = f.src.ConnectSQL(ctx, appName)
	if err != nil {
		return nil, nil, nil, err
	}
	dst, err = f.dst.ConnectSQL(ctx, appName)
	if err != nil {
		src.Close(context.Background())
		return nil, nil, nil, err
	}
	return src, dst, func() {
		src.Close(context.Background())
		dst.Close(context.Background())
	}, nil
}

// metadataSchema is the destination schema holding Sluice's metadata.
func metadataSchema(opts map[string]string) string {
	if s := opts["metadata_schema"]; s != "" {
		return s
	}
	return postgres.DefaultMetadataSchema
}

// postgresPeer loads a Postgres peer's configuration.
func (e *Executor) postgresPeer(ctx context.Context, name string) (*postgres.PeerConfig, error) {
	p, err := e.cfg.Store.GetPeer(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load peer %q: %w", name, err)
	}
	if p.Type != "POSTGRES" {
		return nil, fmt.Errorf("peer %q is %s: only POSTGRES peers can be mirrored yet", name, p.Type)
	}
	cfg, err := postgres.ParsePeerOptions(p.Options)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", name, err)
	}
	return cfg, nil
}
