// Command sluice runs the Sluice server: a Postgres-wire SQL front end for
// change-data-capture mirrors. See `sluice --help`.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors/all"
	"github.com/sluicedb/sluice/executor"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/internal/datadir"
	"github.com/sluicedb/sluice/internal/pgcluster"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/server/metrics"
	"github.com/sluicedb/sluice/server/statuspage"
	"github.com/sluicedb/sluice/server/web"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// faultIgnoreLeaseLoss names the environment variable that, set to 1,
// makes the node ignore the loss of its stream leases (fault injection for
// the fencing tests, replication.Config.IgnoreLeaseLoss); not in --help.
const faultIgnoreLeaseLoss = "SLUICE_FAULT_IGNORE_LEASE_LOSS"

const usage = `Sluice: change-data-capture mirrors driven from psql.

Usage:
  sluice serve [flags]    run the server
  sluice version          print the version
  sluice --help           this text

Flags of serve (each also read from the environment variable shown):
  --listen ADDR        address to listen on (SLUICE_LISTEN, default 127.0.0.1:9900)
  --catalog URL        Postgres URL of the catalog database (SLUICE_CATALOG); without it
                       sluice runs a private catalog cluster under the data dir, using the
                       installed Postgres server binaries (initdb, postgres)
  --data-dir DIR       state directory (SLUICE_DATA_DIR, default ./sluice-data)
  --tls-cert FILE      TLS certificate for client connections (SLUICE_TLS_CERT)
  --tls-key FILE       TLS private key (SLUICE_TLS_KEY)
  --max-message-size N largest protocol message in bytes (SLUICE_MAX_MESSAGE_SIZE, default 67108864)
  --max-connections N  client sessions served at once; more get 53300 (SLUICE_MAX_CONNECTIONS, default 100)
  --catalog-pool-size N
                       catalog connections that client sessions share; a session holds one
                       while a statement runs, and through a transaction block
                       (SLUICE_CATALOG_POOL_SIZE, default 20)
  --catalog-pool-wait D
                       how long a session waits when all of them are busy before it gets
                       53300 (SLUICE_CATALOG_POOL_WAIT, default 10s)
  --http-listen ADDR   HTTP address of Prometheus metrics (/metrics) and the status page (/)
                       (SLUICE_HTTP_LISTEN, default 127.0.0.1:9901); "off" or "" turns it off.
                       On a non-loopback address it needs SLUICE_PASSWORD, which every request
                       must then give as basic auth (any user name) or "Authorization: Bearer"
  --lag-history-retention D
                       how long mirror_lag_history keeps its samples
                       (SLUICE_LAG_HISTORY_RETENTION, default 168h)
  --lag-history-interval D
                       how often mirror_lag_history samples each mirror's lag
                       (SLUICE_LAG_HISTORY_INTERVAL, default 10s, at least 100ms)
  --node-timeout D     how long a node may be silent before it is gone and other nodes sharing
                       the catalog take its mirrors' streams over; see docs/cluster.md
                       (SLUICE_NODE_TIMEOUT, default 15s, at least 1s)
  --memory-limit SIZE  soft limit of the process's memory: the garbage collector works harder
                       as it nears it (SLUICE_MEMORY_LIMIT, default 200MiB; 0 for none; sizes
                       in B, KiB, MiB, GiB, or kB, MB, GB). GOMEMLIMIT, when set, wins
  --log-level LEVEL    debug, info, warn or error (SLUICE_LOG_LEVEL, default info)

Environment only:
  SLUICE_PASSWORD      password of the login user "sluice" (SCRAM-SHA-256); required to listen
                       on a non-loopback address. Without it, loopback logins are trusted.
                       It also guards the HTTP listener.
  SLUICE_SECRET_KEY    32-byte key (hex or base64) encrypting peer secrets in the catalog;
                       default: a key file created in the data dir (secret.key, mode 0600)
  SLUICE_PG_BINDIR     directory of initdb/postgres for the private catalog (default: PATH,
                       then the newest /usr/lib/postgresql/*/bin)

Connect with: psql -h 127.0.0.1 -p 9900 -U sluice
`

// Config is everything serve needs, from flags and environment.
type Config struct {
	Listen         string
	CatalogURL     string
	DataDir        string
	Password       string
	SecretKey      string
	TLSCert        string
	TLSKey         string
	MaxMessageSize int
	MaxConnections int
	// CatalogPoolSize and CatalogPoolWait bound the catalog connections
	// sessions share (executor.Config).
	CatalogPoolSize int
	CatalogPoolWait time.Duration
	// HTTPListen is the metrics and status page listener's address; ""
	// or "off": none (web.Disabled).
	HTTPListen string
	// LagHistoryRetention is how long mirror_lag_history keeps samples
	// (executor.Config).
	LagHistoryRetention time.Duration
	// LagHistoryInterval is how often the lag history samples
	// (executor.Config.LagHistoryEvery).
	LagHistoryInterval time.Duration
	// NodeTimeout is the silence after which a node is gone
	// (executor.Config).
	NodeTimeout time.Duration
	// MemoryLimit is the runtime's soft memory limit in bytes (0: none);
	// GOMEMLIMIT, when set, wins (applyMemoryLimit).
	MemoryLimit int64
	LogLevel    slog.Level
}

// Validate reports a config that cannot or must not run.
func (c *Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("invalid --listen %q: %w", c.Listen, err)
	}
	if c.Password == "" && !isLoopback(host) {
		return fmt.Errorf("refusing to listen on %s without a password: set SLUICE_PASSWORD, or listen on 127.0.0.1", c.Listen)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key must be given together")
	}
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if c.MaxConnections < 1 {
		return fmt.Errorf("invalid --max-connections %d: must be at least 1", c.MaxConnections)
	}
	if c.CatalogPoolSize < 1 {
		return fmt.Errorf("invalid --catalog-pool-size %d: must be at least 1", c.CatalogPoolSize)
	}
	if c.CatalogPoolWait <= 0 {
		return fmt.Errorf("invalid --catalog-pool-wait %s: must be positive", c.CatalogPoolWait)
	}
	if !web.Disabled(c.HTTPListen) {
		wc := web.Config{Listen: c.HTTPListen, Password: c.Password}
		if err := wc.Validate(); err != nil {
			return err
		}
	}
	if c.LagHistoryRetention <= 0 {
		return fmt.Errorf("invalid --lag-history-retention %s: must be positive", c.LagHistoryRetention)
	}
	if c.LagHistoryInterval < 100*time.Millisecond {
		return fmt.Errorf("invalid --lag-history-interval %s: must be at least 100ms", c.LagHistoryInterval)
	}
	if c.NodeTimeout < replication.MinNodeTimeout {
		return fmt.Errorf("invalid --node-timeout %s: must be at least %s", c.NodeTimeout, replication.MinNodeTimeout)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// httpListenDefault is --http-listen's default: SLUICE_HTTP_LISTEN when
// it is set, even to "" (which turns the listener off), else
// web.DefaultListen.
func httpListenDefault() string {
	if v, ok := os.LookupEnv("SLUICE_HTTP_LISTEN"); ok {
		return v
	}
	return web.DefaultListen
}

func parseServe(args []string, stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("sluice serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cfg := &Config{Password: os.Getenv("SLUICE_PASSWORD"), SecretKey: os.Getenv("SLUICE_SECRET_KEY")}
	fs.StringVar(&cfg.Listen, "listen", envOr("SLUICE_LISTEN", "127.0.0.1:9900"), "")
	fs.StringVar(&cfg.CatalogURL, "catalog", envOr("SLUICE_CATALOG", ""), "")
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("SLUICE_DATA_DIR", "./sluice-data"), "")
	fs.StringVar(&cfg.TLSCert, "tls-cert", envOr("SLUICE_TLS_CERT", ""), "")
	fs.StringVar(&cfg.TLSKey, "tls-key", envOr("SLUICE_TLS_KEY", ""), "")
	maxMsg, err := strconv.Atoi(envOr("SLUICE_MAX_MESSAGE_SIZE", strconv.Itoa(server.DefaultMaxMessageSize)))
	if err != nil {
		return nil, fmt.Errorf("invalid SLUICE_MAX_MESSAGE_SIZE: %w", err)
	}
	fs.IntVar(&cfg.MaxMessageSize, "max-message-size", maxMsg, "")
	maxConns, err := strconv.Atoi(envOr("SLUICE_MAX_CONNECTIONS", strconv.Itoa(server.DefaultMaxConnections)))
	if err != nil {
		return nil, fmt.Errorf("invalid SLUICE_MAX_CONNECTIONS: %w", err)
	}
	fs.IntVar(&cfg.MaxConnections, "max-connections", maxConns, "")
	poolSize, err := strconv.Atoi(envOr("SLUICE_CATALOG_POOL_SIZE", strconv.Itoa(executor.DefaultCatalogPoolSize)))
	if err != nil {
		return nil, fmt.Errorf("invalid SLUICE_CATALOG_POOL_SIZE: %w", err)
	}
	fs.IntVar(&cfg.CatalogPoolSize, "catalog-pool-size", poolSize, "")
	poolWait, err := time.ParseDuration(envOr("SLUICE_CATALOG_POOL_WAIT", executor.DefaultCatalogPoolWait.String()))
	if err != nil {
		return nil, fmt.Errorf("invalid SLUICE_CATALOG_POOL_WAIT: %w", err)
	}
	fs.DurationVar(&cfg.CatalogPoolWait, "catalog-pool-wait", poolWait, "")
	fs.StringVar(&cfg.HTTPListen, "http-listen", httpListenDefault(), "")
	retention, err := time.ParseDuration(envOr("SLUICE_LAG_HISTORY_RETENTION", executor.DefaultLagHistoryRetention.String()))
	if err != nil {
		return nil, fmt.Errorf("invalid SLUICE_LAG_HISTORY_RETENTION: %w", err)
	}
	fs.DurationVar(&cfg.LagHistoryRetention, "lag-history-retention", retention, "")
	interval, err := time.ParseDuration(envOr("SLUICE_LAG_HISTORY_INTERVAL", executor.DefaultLagHistoryEvery.String()))
	if err != nil {
		return nil, fmt.Errorf("invalid SLUICE_LAG_HISTORY_INTERVAL: %w", err)
	}
	fs.DurationVar(&cfg.LagHistoryInterval, "lag-history-interval", interval, "")
	nodeTimeout, err := time.ParseDuration(envOr("SLUICE_NODE_TIMEOUT", replication.DefaultNodeTimeout.String()))
	if err != nil {
		return nil, fmt.Errorf("invalid SLUICE_NODE_TIMEOUT: %w", err)
	}
	fs.DurationVar(&cfg.NodeTimeout, "node-timeout", nodeTimeout, "")
	memLimit := fs.String("memory-limit", envOr("SLUICE_MEMORY_LIMIT", fmt.Sprintf("%dMiB", executor.DefaultMemoryLimit>>20)), "")
	level := fs.String("log-level", envOr("SLUICE_LOG_LEVEL", "info"), "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if cfg.MemoryLimit, err = parseSize(*memLimit); err != nil {
		return nil, fmt.Errorf("invalid --memory-limit %q: %w", *memLimit, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q", *level)
	}
	return cfg, cfg.Validate()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintf(stdout, "sluice %s\n", version)
		return 0
	case "serve":
		cfg, err := parseServe(args[1:], stderr)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 2
		}
		logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
		slog.SetDefault(logger)
		applyMemoryLimit(cfg.MemoryLimit, logger)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, cfg, logger); err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// serve wires catalog, executor and server together and runs until ctx ends.
func serve(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	lock, err := datadir.Acquire(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	node, err := datadir.NodeID(cfg.DataDir)
	if err != nil {
		return err
	}
	catalogURL := cfg.CatalogURL
	if catalogURL == "" {
		cluster, url, err := pgcluster.StartLocal(ctx, cfg.DataDir)
		if err != nil {
			return fmt.Errorf("start private catalog cluster: %w", err)
		}
		defer cluster.Stop()
		catalogURL = url
		logger.InfoContext(ctx, "private catalog cluster running", "port", cluster.Port(), "data_dir", cfg.DataDir)
	}
	key, err := catalog.LoadKey(cfg.SecretKey, cfg.DataDir)
	if err != nil {
		return err
	}
	store, err := catalog.Open(ctx, catalogURL, key)
	if err != nil {
		return err
	}
	defer store.Close()
	mets := metrics.New(store.Pool(), logger)
	ignoreLeaseLoss := os.Getenv(faultIgnoreLeaseLoss) == "1"
	if ignoreLeaseLoss {
		logger.WarnContext(ctx, "fault injection: this node ignores the loss of its stream leases; never use it outside tests", "env", faultIgnoreLeaseLoss)
	}
	ex, err := executor.New(executor.Config{Store: store, CatalogURL: catalogURL, Logger: logger,
		CatalogPoolSize: cfg.CatalogPoolSize, CatalogPoolWait: cfg.CatalogPoolWait,
		Kinds: all.Registry(), Observer: mets, LagHistoryRetention: cfg.LagHistoryRetention, LagHistoryEvery: cfg.LagHistoryInterval,
		Node: node, NodeAddress: cfg.Listen, NodeTimeout: cfg.NodeTimeout, IgnoreLeaseLoss: ignoreLeaseLoss})
	if err != nil {
		return err
	}
	stopWeb, err := startWeb(ctx, cfg, store.Pool(), mets, logger)
	if err != nil {
		return err
	}
	defer stopWeb()
	if err := ex.Start(ctx); err != nil {
		return err
	}
	defer ex.Close()
	scfg := server.Config{Password: cfg.Password, MaxMessageSize: cfg.MaxMessageSize, MaxConnections: cfg.MaxConnections, Logger: logger}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		scfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	srv, err := server.New(scfg, ex)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	auth := "trust (loopback only)"
	if cfg.Password != "" {
		auth = "scram-sha-256"
	}
	logger.InfoContext(ctx, "sluice listening", "addr", l.Addr().String(), "auth", auth, "tls", cfg.TLSCert != "",
		"connect", "psql -h "+strings.Split(l.Addr().String(), ":")[0]+" -p "+portOf(l.Addr())+" -U sluice")
	return srv.Serve(ctx, l)
}

// startWeb starts the HTTP listener (metrics, and the status page read
// from db, the catalog) unless it is off; stop waits for it to end after ctx ends.
func startWeb(ctx context.Context, cfg *Config, db statuspage.DB, mets *metrics.Metrics, logger *slog.Logger) (stop func(), err error) {
	if web.Disabled(cfg.HTTPListen) {
		logger.InfoContext(ctx, "HTTP listener off")
		return func() {}, nil
	}
	page, err := statuspage.New(statuspage.Config{DB: db, Logger: logger})
	if err != nil {
		return nil, err
	}
	ws, err := web.New(web.Config{Listen: cfg.HTTPListen, Password: cfg.Password, Metrics: mets.Handler(), Page: page, Logger: logger})
	if err != nil {
		return nil, err
	}
	l, err := ws.Listen()
	if err != nil {
		return nil, err
	}
	auth := "none (loopback only)"
	if cfg.Password != "" {
		auth = "SLUICE_PASSWORD (basic or bearer)"
	}
	logger.InfoContext(ctx, "HTTP listening", "addr", l.Addr().String(), "page", "http://"+l.Addr().String()+"/", "metrics", "http://"+l.Addr().String()+"/metrics", "auth", auth)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ws.Serve(wctx, l); err != nil {
			logger.ErrorContext(ctx, "HTTP listener stopped", "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

func portOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return strconv.Itoa(t.Port)
	}
	return ""
}
