package executor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/sqlerr"
)

// Sessions share a bounded pool of catalog connections rather than hold one
// each. A session borrows a connection for a call of the front end (a
// query string, a Parse, an Execute, a Close) and gives it back at the end
// of the call, unless state of the session lives on it: a transaction
// block (until it ends), or a SQL-level PREPARE, a cursor declared outside
// a block (WITH HOLD) or LISTEN, which pin the connection to the session
// until it ends or runs DISCARD ALL.
//
// A connection keeps the state of the session that last configured it (its
// owner). When another session borrows it, it is first reset (DISCARD ALL,
// which also drops the owner's prepared statements, cursors and LISTENs)
// and given the borrower's start-up parameters (DateStyle, TimeZone, ...)
// and session-level settings (settings.go), in one round trip; a session
// that borrows back the connection it configured last, with no setting
// changed since, pays nothing. Statements the session prepared through the
// extended protocol are prepared again on the connection when they next
// run (prepare.go).
//
// Notices go to the session holding the connection; a cancel request
// cancels the statement running on it (pgconn's context watcher). A session
// that finds every connection busy waits up to CatalogPoolWait, then gets
// 53300. A connection found closed is discarded, never given back.

// DefaultCatalogPoolSize is the default bound on catalog connections that
// sessions share.
const DefaultCatalogPoolSize = 20

// DefaultCatalogPoolWait is the default time a session waits for a catalog
// connection when all are busy.
const DefaultCatalogPoolWait = 10 * time.Second

// catConn is a pooled catalog connection.
type catConn struct {
	conn *pgconn.PgConn
	// holder is the session that has borrowed the connection (nil when
	// idle); its notices go there. Written and read by the holder's
	// goroutine; the pool's mutex orders hand-overs.
	holder *session
	// owner is the id of the session whose settings the connection has (0
	// for none), and version that session's settings version then.
	owner   uint64
	version uint64
	// used marks a connection that has run a session's statements, so it
	// must be reset before another session uses it.
	used bool
	// gen changes whenever the server-side prepared statements of the
	// connection are dropped, so that statements prepared on it before
	// are prepared again.
	gen uint64
}

// catalogPool bounds and shares the sessions' catalog connections. Safe for
// concurrent use.
type catalogPool struct {
	size int
	wait time.Duration
	// dial opens a connection whose notices go to cc's holder.
	dial func(ctx context.Context, cc *catConn) (*pgconn.PgConn, error)
	// slots holds one token per borrowed connection: a connection is
	// dialled only by a borrower that holds a token and finds none idle,
	// so at most size connections are ever open.
	slots chan struct{}

	mu     sync.Mutex
	idle   []*catConn // most recently used last
	closed bool
}

func newCatalogPool(size int, wait time.Duration, dial func(context.Context, *catConn) (*pgconn.PgConn, error)) *catalogPool {
	return &catalogPool{size: size, wait: wait, dial: dial, slots: make(chan struct{}, size)}
}

// errPoolBusy is the error of a session that waited in vain.
func (p *catalogPool) errPoolBusy() *sqlerr.Error {
	return sqlerr.New(pgerrcode.TooManyConnections, "too many sessions are using the catalog at once").
		WithDetail("All %d catalog connections that sessions share were busy for %s.", p.size, p.wait).
		WithHint("Retry; end long transaction blocks in other sessions, or raise Sluice's --catalog-pool-size.")
}

// dialTimeout bounds a connection attempt to the catalog (or the pool's
// wait, if longer), so that a catalog that does not answer never holds a
// session forever.
const dialTimeout = 10 * time.Second

// refusedRetry is how long a borrower waits before dialling again when the
// catalog's server refused a connection for lack of slots.
const refusedRetry = 50 * time.Millisecond

// acquire borrows a connection, preferring prefer (the one the session had
// last) when it is idle. It waits up to p.wait for a free one.
func (p *catalogPool) acquire(ctx context.Context, prefer *catConn) (*catConn, error) {
	deadline := time.Now().Add(p.wait)
	select {
	case p.slots <- struct{}{}:
	default:
		timer := time.NewTimer(p.wait)
		defer timer.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-timer.C:
			return nil, p.errPoolBusy()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for {
		if cc := p.takeIdle(prefer); cc != nil {
			if !cc.conn.IsClosed() {
				return cc, nil
			}
			continue // found closed: discarded
		}
		cc := &catConn{}
		dctx, cancel := context.WithTimeout(ctx, max(p.wait, dialTimeout))
		conn, err := p.dial(dctx, cc)
		cancel()
		if err == nil {
			cc.conn = conn
			return cc, nil
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == pgerrcode.TooManyConnections && time.Now().Add(refusedRetry).Before(deadline) {
			// The catalog's server is full (mirrors and other clients use
			// it too): wait for one of the pool's own connections to come
			// back, or for a slot on the server.
			select {
			case <-time.After(refusedRetry):
				continue
			case <-ctx.Done():
			}
		}
		<-p.slots
		return nil, err
	}
}

// takeIdle removes an idle connection from the pool: prefer if it is idle,
// else the most recently used one, else nil.
func (p *catalogPool) takeIdle(prefer *catConn) *catConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := len(p.idle) - 1
	for j, cc := range p.idle {
		if cc == prefer {
			i = j
		}
	}
	if i < 0 {
		return nil
	}
	cc := p.idle[i]
	p.idle = append(p.idle[:i], p.idle[i+1:]...)
	return cc
}

// tryTake borrows cc if it is idle and a borrower's slot is free now, else
// returns false at once.
func (p *catalogPool) tryTake(cc *catConn) bool {
	select {
	case p.slots <- struct{}{}:
	default:
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, idle := range p.idle {
		if idle == cc {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return true
		}
	}
	<-p.slots
	return false
}

// release gives cc back, or closes it when it is closed or not idle (a
// connection lost, or a session that ended inside a transaction block).
func (p *catalogPool) release(ctx context.Context, cc *catConn) {
	cc.holder = nil
	keep := !cc.conn.IsClosed() && cc.conn.TxStatus() == 'I'
	p.mu.Lock()
	keep = keep && !p.closed
	if keep {
		p.idle = append(p.idle, cc)
	}
	p.mu.Unlock()
	if !keep {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		cc.conn.Close(ctx)
		cancel()
	}
	<-p.slots
}

// close closes the idle connections; connections borrowed now are closed
// when they come back.
func (p *catalogPool) close(ctx context.Context) {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, cc := range idle {
		cc.conn.Close(ctx)
	}
}
