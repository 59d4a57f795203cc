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

	ex     *executor.Executor
	cancel context.CancelFunc
	done   chan error
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
}

// StartSluice starts a server on a random loopback port with its catalog in
// a new database of cat. Logs go to stderr when SLUICE_TEST_LOG is set.
func StartSluice(ctx context.Context, cat *Cluster, opts Options) (*Sluice, error) {
	password := opts.Password
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
	url := cat.URL(dbName)
	key := make([]byte, catalog.KeySize)
	_, _ = rand.Read(key)
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
	ex, err := executor.New(executor.Config{Store: store, CatalogURL: url, Logger: logger,
		CatalogPoolSize: opts.CatalogPoolSize, CatalogPoolWait: opts.CatalogPoolWait, Kinds: kinds})
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
		CatalogURL: url, Store: store, cancel: cancel, done: make(chan error, 1),
	}
	if err := ex.Start(sctx); err != nil {
		cancel()
		l.Close()
		store.Close()
		return nil, err
	}
	s.ex = ex
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
	s.ex.Close()
	s.Store.Close()
	return err
}
