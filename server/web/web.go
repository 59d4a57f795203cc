// Package web is Sluice's HTTP listener (--http-listen): Prometheus
// metrics at /metrics and a page at / (the status page, or a small plain
// page without one). It owns the listener, its authentication and its
// shutdown; what it serves is handed to it (server/metrics, the status
// page), so it knows nothing of the catalog.
//
// Authentication follows the wire server's rule: without a password the
// listener must be on a loopback address and every request is served;
// with one (SLUICE_PASSWORD), every request needs it, as HTTP basic auth
// (any user name) or as "Authorization: Bearer <password>".
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// DefaultListen is --http-listen's default.
const DefaultListen = "127.0.0.1:9901"

// Disabled reports whether listen turns the listener off ("" or "off").
func Disabled(listen string) bool {
	return listen == "" || strings.EqualFold(listen, "off")
}

// Config configures a Server.
type Config struct {
	// Listen is the address to listen on (host:port); see Disabled.
	Listen string
	// Password, if set, guards every request (basic auth with any user
	// name, or a bearer token). Without it Listen must be a loopback
	// address.
	Password string
	// Metrics is served at /metrics (server/metrics' Handler); nil: 404.
	Metrics http.Handler
	// Page is served at / and every path but /metrics (the status page);
	// nil: a small plain page that links /metrics, and 404 elsewhere.
	Page http.Handler
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Validate reports a config that must not run: an address that does not
// parse, or a non-loopback one without a password. It sets defaults.
func (c *Config) Validate() error {
	if Disabled(c.Listen) {
		return errors.New("web: the HTTP listener is disabled (--http-listen off)")
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("invalid --http-listen %q: %w", c.Listen, err)
	}
	if c.Password == "" && !IsLoopback(host) {
		return fmt.Errorf("refusing to serve HTTP on %s without a password: set SLUICE_PASSWORD (then requests need it "+
			"as basic auth or a bearer token), listen on 127.0.0.1, or turn the listener off with --http-listen off", c.Listen)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// IsLoopback reports whether host (of a host:port) names a loopback
// address: localhost, 127.0.0.0/8 or ::1. An empty host (every interface)
// is not one.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is the HTTP listener. Safe for concurrent use.
type Server struct {
	cfg     Config
	handler http.Handler
}

// New returns a server for cfg, validated.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	if cfg.Metrics != nil {
		mux.Handle("/metrics", cfg.Metrics)
	}
	if cfg.Page != nil {
		mux.Handle("/", cfg.Page)
	} else {
		mux.HandleFunc("/{$}", plainPage)
	}
	s := &Server{cfg: cfg, handler: mux}
	if cfg.Password != "" {
		s.handler = s.authenticate(mux)
	}
	return s, nil
}

// Handler returns what the server serves, authentication included.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen opens the configured address.
func (s *Server) Listen() (net.Listener, error) {
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on --http-listen %s: %w", s.cfg.Listen, err)
	}
	return l, nil
}

// shutdownWait is how long Serve lets requests under way finish once ctx
// ends.
const shutdownWait = 5 * time.Second

// Serve serves on l until ctx ends, then shuts down gracefully: it stops
// accepting, lets requests under way finish for a few seconds, and
// returns nil. It closes l. Any other end is an error.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:    slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
	}()
	err := hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return fmt.Errorf("serve HTTP: %w", err)
}

// authenticate lets through requests that carry the password, as basic
// auth (any user name) or a bearer token, and answers others 401 with a
// challenge. The comparison is of the passwords' hashes, in constant
// time.
func (s *Server) authenticate(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.Password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var given string
		ok := false
		if _, pw, basic := r.BasicAuth(); basic {
			given, ok = pw, true
		} else if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			given, ok = strings.TrimSpace(h[7:]), true
		}
		if ok {
			got := sha256.Sum256([]byte(given))
			if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="sluice", charset="UTF-8"`)
		http.Error(w, "401 unauthorized: this listener needs SLUICE_PASSWORD, as basic auth (any user name) "+
			"or as a bearer token", http.StatusUnauthorized)
	})
}

// plainPage is "/" without a status page: what is here.
func plainPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>Sluice</title></head>
<body><h1>Sluice</h1>
<p><a href="/metrics">/metrics</a>: Prometheus metrics.</p>
<p>Status tables: connect with psql and <code>SELECT * FROM mirrors</code>.</p>
</body></html>
`)
}
