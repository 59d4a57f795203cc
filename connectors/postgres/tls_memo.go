package postgres

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// With TLS preferred (sslmode=prefer, a peer's default), a connection to a
// server without TLS costs two: Postgres starts a server process for the
// TLS request, which is refused, and another for the plain-text
// connection that follows (30 ms instead of 20 on the 2-core machine,
// where a mirror opens about ten connections around a table resync). A
// tlsMemo remembers, per server address, that the server refused TLS:
// for tlsRefusedFor after that, a connection tries plain text first and
// TLS second (when the server asks for TLS after all, the plain attempt
// fails and the TLS one follows, and the memo is forgotten); then TLS is
// tried first again. What may be sent in plain text is what sslmode=prefer
// allows; only the order of the attempts changes.

// tlsRefusedFor is how long a server that refused TLS is connected to in
// plain text first.
const tlsRefusedFor = 10 * time.Minute

// tlsMemo is what a Postgres kind (Kind) remembers of the servers its
// peers connect to. Safe for concurrent use.
type tlsMemo struct {
	mu      sync.Mutex
	refused map[string]time.Time // server address -> when it refused TLS
	now     func() time.Time     // time.Now; tests move it
}

func newTLSMemo() *tlsMemo {
	return &tlsMemo{refused: map[string]time.Time{}, now: time.Now}
}

// plainFirst reports whether addr refused TLS less than tlsRefusedFor ago.
func (m *tlsMemo) plainFirst(addr string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.refused[addr]
	return ok && m.now().Sub(at) < tlsRefusedFor
}

// connected records how a connection to addr, tried with TLS first unless
// plainFirst, came up: over TLS (the memo forgets addr) or, TLS tried
// first, in plain text (addr refused TLS now).
func (m *tlsMemo) connected(addr string, plainFirst, overTLS bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case overTLS:
		delete(m.refused, addr)
	case !plainFirst:
		m.refused[addr] = m.now()
	}
}

// order sets cfg's attempts for a peer that prefers TLS with tlsCfg: TLS
// then plain text, or plain text then TLS when addr refused TLS lately;
// with m nil, always TLS first.
func (m *tlsMemo) order(cfg *pgconn.Config, tlsCfg *tls.Config) {
	cfg.TLSConfig = tlsCfg
	cfg.Fallbacks = []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port}}
	if m == nil {
		return
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	plain := m.plainFirst(addr)
	if plain {
		cfg.TLSConfig = nil
		cfg.Fallbacks = []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: tlsCfg}}
	}
	cfg.AfterConnect = func(_ context.Context, pc *pgconn.PgConn) error {
		_, overTLS := pc.Conn().(*tls.Conn)
		m.connected(addr, plain, overTLS)
		return nil
	}
}
