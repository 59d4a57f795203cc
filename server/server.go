package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxMessageSize is the largest protocol message body accepted.
const DefaultMaxMessageSize = 64 << 20

// DefaultMaxConnections is the default bound on concurrent client sessions.
const DefaultMaxConnections = 100

// Config configures a Server.
type Config struct {
	// User is the only login role (default "sluice").
	User string
	// Password enables SCRAM-SHA-256 authentication; empty means trust.
	Password string
	// TLS, when set, is offered to clients that send SSLRequest.
	TLS *tls.Config
	// MaxMessageSize bounds one protocol message (default DefaultMaxMessageSize).
	MaxMessageSize int
	// MaxConnections bounds the client sessions open at once (default
	// DefaultMaxConnections); one more is refused at start-up with 53300
	// before the backend is asked for a session. CancelRequests do not count.
	MaxConnections int
	// Logger receives connection-level events (default slog.Default()).
	Logger *slog.Logger
}

// Validate fills defaults and reports an unusable config.
func (c *Config) Validate() error {
	if c.User == "" {
		c.User = "sluice"
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxConnections < 1 {
		return fmt.Errorf("server: max connections %d must be at least 1", c.MaxConnections)
	}
	if c.MaxMessageSize < 1024 {
		return fmt.Errorf("server: max message size %d is too small", c.MaxMessageSize)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Server accepts client connections and serves each with a Backend session.
// It is safe for concurrent use.
type Server struct {
	cfg     Config
	backend Backend
	scram   *scramCredential // nil when no password

	nextPID  atomic.Uint32
	sessions atomic.Int64 // sessions holding a slot of MaxConnections
	mu       sync.Mutex
	running  map[uint32]*conn // by process ID, for CancelRequest
	conns    sync.WaitGroup
}

// New returns a server; call Serve to accept connections.
func New(cfg Config, backend Backend) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, backend: backend, running: make(map[uint32]*conn)}
	if cfg.Password != "" {
		cred, err := newSCRAMCredential(cfg.Password)
		if err != nil {
			return nil, err
		}
		s.scram = cred
	}
	return s, nil
}

// Serve accepts connections on l until ctx is cancelled, then closes l,
// cancels running statements, and waits for connections to end.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	var err error
	for {
		var nc net.Conn
		nc, err = l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			break
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serveConn(ctx, nc)
		}()
	}
	s.conns.Wait()
	return err
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	c := &conn{srv: s, nc: nc, log: s.cfg.Logger.With("remote", nc.RemoteAddr().String())}
	defer nc.Close()
	// Closing the socket when the server stops unblocks a pending read.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	c.serve(ctx)
}

// register assigns a process ID and secret key to c for CancelRequest.
func (s *Server) register(c *conn) {
	var key [4]byte
	_, _ = rand.Read(key[:])
	c.secret = binary.BigEndian.Uint32(key[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		pid := s.nextPID.Add(1)
		if pid == 0 {
			continue
		}
		if _, taken := s.running[pid]; !taken {
			c.pid = pid
			s.running[pid] = c
			return
		}
	}
}

// admit takes one of MaxConnections session slots and reports whether one
// was free; release gives an admitted session's slot back.
func (s *Server) admit() bool {
	if s.sessions.Add(1) > int64(s.cfg.MaxConnections) {
		s.sessions.Add(-1)
		return false
	}
	return true
}

func (s *Server) release() { s.sessions.Add(-1) }

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[c.pid] == c {
		delete(s.running, c.pid)
	}
}

// cancel cancels the running statement of the session with pid, if secret
// matches. Like Postgres, it reports nothing either way.
func (s *Server) cancel(pid uint32, secret []byte) {
	if len(secret) != 4 {
		return
	}
	s.mu.Lock()
	c := s.running[pid]
	s.mu.Unlock()
	if c != nil && c.secret == binary.BigEndian.Uint32(secret) {
		c.cancelRunning()
	}
}
