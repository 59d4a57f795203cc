package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// clears when a step succeeds.

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

// Start resumes every mirror whose operator wants it running. Runners stop
// when ctx ends (Close waits for them).
func (e *Executor) Start(ctx context.Context) error {
	e.sup.mu.Lock()
	e.sup.base = ctx
	e.sup.mu.Unlock()
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

// Close stops every runner and waits for them.
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
	maxBackoff = time.Minute
)

// run drives one mirror until its context ends, it is paused or dropped, or
// it completes.
func (s *supervisor) run(ctx context.Context, name string) {
	log := s.ex.cfg.Logger.With("mirror", name)
	store := s.ex.cfg.Store
	backoff := minBackoff
	for ctx.Err() == nil {
		m, err := store.GetMirror(ctx, name)
		if errors.Is(err, catalog.ErrMirrorNotFound) {
			return
		}
		if err == nil && m.Desired != catalog.DesiredRunning {
			return
		}
		if err == nil {
			f := &flow{ex: s.ex, m: m, cfg: configOf(m.Options), log: log}
			err = f.step(ctx)
		}
		if errors.Is(err, errFlowDone) {
			return
		}
		if err == nil {
			backoff = minBackoff
			continue
		}
		if ctx.Err() != nil {
			return
		}
		log.ErrorContext(ctx, "mirror step failed", "err", err, "retry_in", backoff)
		if serr := store.SetError(ctx, name, err.Error()); serr != nil && ctx.Err() == nil {
			log.ErrorContext(ctx, "record mirror error", "err", serr)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
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
