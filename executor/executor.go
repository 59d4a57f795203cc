// Package executor runs statements: Sluice's own verbs (one file per
// statement kind) and standard SQL, which it routes either to the catalog
// (status views, SET, SHOW, psql's catalog look-ups) or, for a query naming
// a peer as in SELECT ... FROM peer.schema.table, to that peer.
package executor

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/server"
)

// Config configures an Executor.
type Config struct {
	// Store is the catalog; the executor does not own it.
	Store *catalog.Store
	// CatalogURL is the catalog database's URL; each client session opens
	// its own read-only connection to it for status queries.
	CatalogURL string
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("executor: catalog store is required")
	}
	if c.CatalogURL == "" {
		return errors.New("executor: catalog URL is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Executor opens sessions for the server. It is safe for concurrent use.
type Executor struct {
	cfg Config
}

var _ server.Backend = (*Executor)(nil)

// New returns an executor.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Executor{cfg: cfg}, nil
}

// Open starts a session: it connects to the catalog (read-only, search_path
// set to the status views) so that status queries and psql's look-ups work.
func (e *Executor) Open(ctx context.Context, info server.SessionInfo) (server.Session, error) {
	s := &session{ex: e, info: info, peers: make(map[string]*peerConn)}
	if err := s.connectCatalog(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
