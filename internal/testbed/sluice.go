package testbed

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/all"
	"github.com/sluicedb/sluice/executor"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/server/metrics"
	"github.com/sluicedb/sluice/server/statuspage"
	"github.com/sluicedb/sluice/server/web"
)

// Sluice is a Sluice server running inside the test process, with its
// catalog in a fresh database of a test cluster.
type Sluice struct {
	Host     string
	Port     int
	User     string
	Password string
	// CatalogURL is the catalog database's URL.
	CatalogURL string
	Store      *catalog.Store
	// HTTPURL is the HTTP listener's base URL (http://127.0.0.1:port),
	// when Options.HTTP started one; else "".
	HTTPURL string

	ex     *executor.Executor
	cancel context.CancelFunc
	done   chan error
	// webDone receives the HTTP listener's end (nil: none started).
	webDone chan error
	// key is the catalog's secret key (for Options.Join).
	key []byte
}

var catalogSeq atomic.Int64

// Options configure StartSluice.
type Options struct {
	// Password enables SCRAM authentication; empty means trust.
	Password string
	// TLS is offered to clients when set.
	TLS *tls.Config
	// MaxMessageSize bounds protocol messages (0: the server's default).
	MaxMessageSize int
	// MaxConnections bounds concurrent sessions (0: the server's default).
	MaxConnections int
	// CatalogPoolSize and CatalogPoolWait bound the catalog connections
	// sessions share (0: the executor's defaults).
	CatalogPoolSize int
	CatalogPoolWait time.Duration
	// Kinds are the kinds of peers the server knows (nil: every connector,
	// as cmd/sluice wires them).
	Kinds *connectors.Registry
	// HTTP starts the HTTP listener (metrics, as cmd/sluice wires it) on
	// a free loopback port, guarded by Password (Sluice.HTTPURL).
	HTTP bool
	// LagHistoryEvery is how often the lag history samples (0: the
	// executor's default).
	LagHistoryEvery time.Duration
	// Join, when set, makes the server another node of Join's catalog
	// (docs/cluster.md) rather than the first of a new one: the same
	// catalog database and secret key, a node of its own.
	Join *Sluice
}

// StartSluice starts a server on a random loopback port with its catalog in
// a new database of cat. Logs go to stderr when SLUICE_TEST_LOG is set.
func StartSluice(ctx context.Context, cat *Cluster, opts Options) (*Sluice, error) {
	password := opts.Password
	var url string
	var key []byte
	if opts.Join != nil {
		url, key = opts.Join.CatalogURL, opts.Join.key
	} else {
		dbName := fmt.Sprintf("sluice_catalog_%d", catalogSeq.Add(1))
		conn, err := pgconn.Connect(ctx, cat.URL("postgres"))
		if err != nil {
			return nil, fmt.Errorf("testbed: connect catalog cluster: %w", err)
		}
		_, err = conn.Exec(ctx, "CREATE DATABASE "+dbName).ReadAll()
		conn.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("testbed: create catalog database: %w", err)
		}
		url = cat.URL(dbName)
		key = make([]byte, catalog.KeySize)
		_, _ = rand.Read(key)
	}
	store, err := catalog.Open(ctx, url, key)
	if err != nil {
		return nil, err
	}
	var logOut io.Writer = io.Discard
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	kinds := opts.Kinds
	if kinds == nil {
		kinds = all.Registry()
	}
	mets := metrics.New(store.Pool(), logger)
	ex, err := executor.New(executor.Config{Store: store, CatalogURL: url, Logger: logger,
		CatalogPoolSize: opts.CatalogPoolSize, CatalogPoolWait: opts.CatalogPoolWait, Kinds: kinds,
		Observer: mets, LagHistoryEvery: opts.LagHistoryEvery})
	if err != nil {
		store.Close()
		return nil, err
	}
	srv, err := server.New(server.Config{Password: password, Logger: logger, TLS: opts.TLS, MaxMessageSize: opts.MaxMessageSize,
		MaxConnections: opts.MaxConnections}, ex)
	if err != nil {
		store.Close()
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Sluice{
		Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, User: "sluice", Password: password,
		CatalogURL: url, Store: store, cancel: cancel, done: make(chan error, 1), key: key,
	}
	if err := ex.Start(sctx); err != nil {
		cancel()
		l.Close()
		store.Close()
		return nil, err
	}
	s.ex = ex
	if opts.HTTP {
		var ws *web.Server
		page, err := statuspage.New(statuspage.Config{DB: store.Pool(), Logger: logger})
		if err == nil {
			ws, err = web.New(web.Config{Listen: "127.0.0.1:0", Password: password, Metrics: mets.Handler(), Page: page, Logger: logger})
		}
		if err == nil {
			var hl net.Listener
			if hl, err = ws.Listen(); err == nil {
				s.HTTPURL = "http://" + hl.Addr().String()
				s.webDone = make(chan error, 1)
				go func() { s.webDone <- ws.Serve(sctx, hl) }()
			}
		}
		if err != nil {
			cancel()
			l.Close()
			ex.Close()
			store.Close()
			return nil, err
		}
	}
	go func() { s.done <- srv.Serve(sctx, l) }()
	return s, nil
}

// URL returns a connection URL for the server.
func (s *Sluice) URL() string {
	u := "postgres://" + s.User
	if s.Password != "" {
		u += ":" + s.Password
	}
	return u + "@" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) + "/sluice?sslmode=disable"
}

// Stop shuts the server down and closes its catalog store.
func (s *Sluice) Stop() error {
	s.cancel()
	err := <-s.done
	if s.webDone != nil {
		if werr := <-s.webDone; werr != nil && err == nil {
			err = werr
		}
	}
	s.ex.Close()
	s.Store.Close()
	return err
}
