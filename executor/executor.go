package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
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
	// CatalogPoolSize bounds the catalog connections that client sessions
	// share (catalog_pool.go); 0 means DefaultCatalogPoolSize.
	CatalogPoolSize int
	// CatalogPoolWait is how long a session waits for a catalog connection
	// when all are busy before it gets 53300; 0 means
	// DefaultCatalogPoolWait.
	CatalogPoolWait time.Duration
	// Kinds are the kinds of peers the server knows (connectors/all builds
	// them); required. CREATE PEER refuses a type not in it.
	Kinds *connectors.Registry
	// Observer receives what the flows and the slot monitor measure for
	// metrics (server/metrics implements it); nil: none listens.
	Observer Observer
	// LagHistoryRetention is how long mirror_lag_history keeps samples;
	// 0 means DefaultLagHistoryRetention.
	LagHistoryRetention time.Duration
	// LagHistoryEvery is how often the lag history samples every mirror;
	// 0 means DefaultLagHistoryEvery (tests set it shorter).
	LagHistoryEvery time.Duration
	// Node, NodeAddress and NodeTimeout make this process a node of the
	// processes sharing the catalog (replication.Config's Node, Address
	// and NodeTimeout; docs/cluster.md). Node "": a random id for the
	// process's life.
	Node        string
	NodeAddress string
	NodeTimeout time.Duration
	// IgnoreLeaseLoss is fault injection for tests
	// (replication.Config.IgnoreLeaseLoss).
	IgnoreLeaseLoss bool
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("executor: catalog store is required")
	}
	if c.Kinds == nil {
		return errors.New("executor: peer kinds (a connectors.Registry) are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CatalogPoolSize == 0 {
		c.CatalogPoolSize = DefaultCatalogPoolSize
	}
	if c.CatalogPoolSize < 1 {
		return fmt.Errorf("executor: catalog pool size %d must be at least 1", c.CatalogPoolSize)
	}
	if c.CatalogPoolWait == 0 {
		c.CatalogPoolWait = DefaultCatalogPoolWait
	}
	if c.CatalogPoolWait < 0 {
		return fmt.Errorf("executor: catalog pool wait %s must not be negative", c.CatalogPoolWait)
	}
	if c.LagHistoryRetention == 0 {
		c.LagHistoryRetention = DefaultLagHistoryRetention
	}
	if c.LagHistoryRetention < 0 {
		return fmt.Errorf("executor: lag history retention %s must be positive", c.LagHistoryRetention)
	}
	if c.LagHistoryEvery == 0 {
		c.LagHistoryEvery = DefaultLagHistoryEvery
	}
	if c.LagHistoryEvery < 0 {
		return fmt.Errorf("executor: lag history interval %s must be positive", c.LagHistoryEvery)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return nil
}

// Executor opens sessions for the server. It is safe for concurrent use.
type Executor struct {
	cfg    Config
	warn   sync.Once           // the warning that sessions are not isolated
	engine *replication.Engine // runs the mirrors' flows
	pool   *catalogPool        // the catalog connections sessions share
	// tablesMu serializes ALTER MIRROR's ADD TABLE and DROP TABLE (of any
	// mirror): each reads the mirror's tables, then sets the source's
	// stream to that list changed, which two at once on one mirror would
	// undo in part (mirror_alter_tables.go).
	tablesMu sync.Mutex
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
	engine, err := replication.New(replication.Config{Store: cfg.Store, Kinds: cfg.Kinds, Logger: cfg.Logger,
		Observer: cfg.Observer, Node: cfg.Node, Address: cfg.NodeAddress, NodeTimeout: cfg.NodeTimeout,
		IgnoreLeaseLoss: cfg.IgnoreLeaseLoss, Periodic: e.periodicWork()})
	if err != nil {
		return nil, err
	}
	e.engine = engine
	e.pool = newCatalogPool(cfg.CatalogPoolSize, cfg.CatalogPoolWait, e.dialCatalog)
	return e, nil
}

// catalogURL is the URL sessions connect to the catalog with.
func (e *Executor) catalogURL() string {
	if u := e.cfg.Store.ReaderURL(); u != "" {
		return u
	}
	return e.cfg.CatalogURL
}

// Open starts a session: it borrows a catalog connection (read-only,
// search_path set to the status views) once, to check that the catalog
// answers and to learn the parameters reported to the client; status
// queries and psql's look-ups borrow one as they run (catalog_pool.go).
func (e *Executor) Open(ctx context.Context, info server.SessionInfo) (server.Session, error) {
	if !e.cfg.Store.ReaderIsolated() {
		e.warn.Do(func() {
			e.cfg.Logger.WarnContext(ctx, "the catalog's user cannot create roles, so client sessions query "+
				"the catalog as that user: only Sluice's checks keep them read-only; "+
				"give it CREATEROLE to have sessions use an unprivileged reader role")
		})
	}
	s := &session{ex: e, info: info, id: sessionIDs.Add(1),
		peers: make(map[string]*peerConn), readers: make(map[string]*peerConn)}
	if _, err := s.catalogConn(ctx); err != nil {
		return nil, withoutRoles(err)
	}
	s.releaseCatalog(ctx)
	return s, nil
}

// checkCatalogCapacity warns when the catalog connections sessions share
// (CatalogPoolSize) do not fit in the catalog server's connection slots:
// sessions would then wait for connections the pool cannot open.
func (e *Executor) checkCatalogCapacity(ctx context.Context) {
	var slots int
	err := e.cfg.Store.Pool().QueryRow(ctx, `SELECT current_setting('max_connections')::int
		- current_setting('superuser_reserved_connections')::int`).Scan(&slots)
	if err != nil {
		e.cfg.Logger.WarnContext(ctx, "cannot read the catalog's max_connections", "err", err)
		return
	}
	// Sluice's own (mirrors, status), and the node's jobs (River).
	own := int(e.cfg.Store.Pool().Config().MaxConns) + replication.JobsCatalogConns
	if e.cfg.CatalogPoolSize+own > slots {
		e.cfg.Logger.WarnContext(ctx, "--catalog-pool-size and Sluice's own catalog connections are above the catalog server's "+
			"connection slots: sessions may wait for catalog connections and get 53300; lower --catalog-pool-size "+
			"or raise max_connections on the catalog's server",
			"catalog_pool_size", e.cfg.CatalogPoolSize, "own_connections", own, "catalog_slots", slots)
	}
}
