// Package executor runs statements: Sluice's own verbs (one file per
// statement kind) and standard SQL, which it routes either to the catalog
// (status views, SET, SHOW, psql's catalog look-ups) or, for a query naming
// a peer as in SELECT ... FROM peer.schema.table, to that peer.
//
// Sessions query the catalog as its unprivileged reader role
// (catalog.Store.ReaderURL), read-only; statements that could write are
// refused before they reach it (readonly.go). Federated queries and cursors
// over them run on a read-only connection to the peer (peercursor.go);
// EXECUTE peer('...') and writes by peer name (peerwrite.go) on a
// read-write one.
package executor

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/server"
)

// Config configures an Executor.
type Config struct {
	// Store is the catalog; the executor does not own it. Sessions connect
	// to the catalog with Store.ReaderURL().
	Store *catalog.Store
	// CatalogURL is the catalog database's URL. It is kept for
	// compatibility: sessions use it only if Store.ReaderURL() is empty.
	CatalogURL string
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// MaxSessions is the server's bound on client sessions, each of which
	// holds one catalog connection; Start warns when the catalog's server
	// has fewer connection slots. 0 skips the check.
	MaxSessions int
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("executor: catalog store is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Executor opens sessions for the server. It is safe for concurrent use.
type Executor struct {
	cfg  Config
	warn sync.Once  // the warning that sessions are not isolated
	sup  supervisor // the mirrors' runners
	// monStop stops the slot monitor (monitor.go) and monDone is closed
	// when it has stopped; nil until Start.
	monStop context.CancelFunc
	monDone chan struct{}
}

var _ server.Backend = (*Executor)(nil)

// New returns an executor.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Store.ReaderURL() == "" && cfg.CatalogURL == "" {
		return nil, errors.New("executor: catalog URL is required")
	}
	e := &Executor{cfg: cfg}
	e.sup.ex = e
	return e, nil
}

// catalogURL is the URL sessions connect to the catalog with.
func (e *Executor) catalogURL() string {
	if u := e.cfg.Store.ReaderURL(); u != "" {
		return u
	}
	return e.cfg.CatalogURL
}

// Open starts a session: it connects to the catalog (read-only, search_path
// set to the status views) so that status queries and psql's look-ups work.
func (e *Executor) Open(ctx context.Context, info server.SessionInfo) (server.Session, error) {
	if !e.cfg.Store.ReaderIsolated() {
		e.warn.Do(func() {
			e.cfg.Logger.WarnContext(ctx, "the catalog's user cannot create roles, so client sessions query "+
				"the catalog as that user: only Sluice's checks keep them read-only; "+
				"give it CREATEROLE to have sessions use an unprivileged reader role")
		})
	}
	s := &session{ex: e, info: info, peers: make(map[string]*peerConn), readers: make(map[string]*peerConn)}
	if err := s.connectCatalog(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// checkCatalogCapacity warns when MaxSessions sessions, each holding a
// catalog connection, could exhaust the catalog server's connection slots:
// sessions past that point are refused by the catalog (53300) rather than by
// Sluice's own limit.
func (e *Executor) checkCatalogCapacity(ctx context.Context) {
	if e.cfg.MaxSessions == 0 {
		return
	}
	var slots int
	err := e.cfg.Store.Pool().QueryRow(ctx, `SELECT current_setting('max_connections')::int
		- current_setting('superuser_reserved_connections')::int`).Scan(&slots)
	if err != nil {
		e.cfg.Logger.WarnContext(ctx, "cannot read the catalog's max_connections", "err", err)
		return
	}
	if e.cfg.MaxSessions > slots {
		e.cfg.Logger.WarnContext(ctx, "--max-connections is above the catalog server's connection slots: "+
			"sessions past those slots will be refused by the catalog; lower --max-connections or raise max_connections on the catalog's server",
			"max_connections", e.cfg.MaxSessions, "catalog_slots", slots)
	}
}
