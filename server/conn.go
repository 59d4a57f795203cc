package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/sqlerr"
)

// conn is one client connection.
type conn struct {
	srv *Server
	nc  net.Conn
	be  *pgproto3.Backend
	log *slog.Logger

	pid    uint32
	secret uint32

	sess Session
	ext  extendedState

	mu      sync.Mutex
	running context.CancelFunc // cancels the statement in progress
}

func (c *conn) serve(ctx context.Context) {
	c.be = pgproto3.NewBackend(c.nc, c.nc)
	c.be.SetMaxBodyLen(c.srv.cfg.MaxMessageSize)
	startup, err := c.handshake()
	if err != nil || startup == nil {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			c.log.DebugContext(ctx, "start-up failed", "err", err)
		}
		return
	}
	// Like Postgres, refuse a session over the limit once its start-up
	// packet is read, before authentication and before the backend (and so
	// the catalog) is asked for anything.
	if !c.srv.admit() {
		c.sendError(fatal(sqlerr.New(pgerrcode.TooManyConnections, "sorry, too many clients already").
			WithDetail("Sluice serves at most %d sessions at once (--max-connections).", c.srv.cfg.MaxConnections)))
		_ = c.be.Flush()
		return
	}
	defer c.srv.release()
	info := SessionInfo{
		User:            startup.Parameters["user"],
		Database:        startup.Parameters["database"],
		ApplicationName: startup.Parameters["application_name"],
		RemoteAddr:      c.nc.RemoteAddr().String(),
		Params:          startup.Parameters,
	}
	if info.Database == "" {
		info.Database = info.User
	}
	if !c.authenticate(info.User) {
		return
	}
	c.srv.register(c)
	defer c.srv.unregister(c)

	sess, err := c.srv.backend.Open(ctx, info)
	if err != nil {
		c.sendError(fatal(sqlerr.From(err)))
		_ = c.be.Flush()
		return
	}
	c.sess = sess
	defer func() {
		c.ext.closeAll(context.Background())
		sess.Close(context.Background())
	}()

	c.be.Send(&pgproto3.AuthenticationOk{})
	params := sess.ParameterChanges()
	params["application_name"] = info.ApplicationName
	params["session_authorization"] = info.User
	for _, k := range sortedKeys(params) {
		c.be.Send(&pgproto3.ParameterStatus{Name: k, Value: params[k]})
	}
	c.be.Send(&pgproto3.BackendKeyData{ProcessID: c.pid, SecretKey: uint32Bytes(c.secret)})
	c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := c.be.Flush(); err != nil {
		return
	}
	c.log.DebugContext(ctx, "session started", "user", info.User, "application", info.ApplicationName)
	if err := c.loop(ctx); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && ctx.Err() == nil {
		c.log.DebugContext(ctx, "session ended", "err", err)
	}
}

// handshake handles SSLRequest, GSSENCRequest and CancelRequest and returns
// the StartupMessage; nil without error means the connection is done.
func (c *conn) handshake() (*pgproto3.StartupMessage, error) {
	tlsDone := false
	for {
		msg, options, err := readStartupPacket(c.nc)
		if err != nil {
			var e *sqlerr.Error
			if errors.As(err, &e) {
				c.sendError(fatal(e))
				_ = c.be.Flush()
				return nil, nil
			}
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if c.srv.cfg.TLS == nil || tlsDone {
				if _, err := c.nc.Write([]byte{'N'}); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := c.nc.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc := tls.Server(c.nc, c.srv.cfg.TLS)
			if err := tc.Handshake(); err != nil {
				return nil, fmt.Errorf("tls handshake: %w", err)
			}
			c.nc = tc
			c.be = pgproto3.NewBackend(tc, tc)
			c.be.SetMaxBodyLen(c.srv.cfg.MaxMessageSize)
			tlsDone = true
		case *pgproto3.GSSEncRequest:
			if _, err := c.nc.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case *pgproto3.CancelRequest:
			c.srv.cancel(m.ProcessID, m.SecretKey)
			return nil, nil
		case *pgproto3.StartupMessage:
			if n := negotiation(m, options); n != nil {
				// We speak 3.0; tell a newer client so (it then falls back).
				c.be.Send(n)
			}
			return m, nil
		default:
			return nil, fmt.Errorf("unexpected start-up message %T", msg)
		}
	}
}

// authenticate runs SCRAM-SHA-256 (or trust) and reports success; on failure
// it has sent the error.
func (c *conn) authenticate(user string) bool {
	fail := func(e *sqlerr.Error) bool {
		c.sendError(fatal(e))
		_ = c.be.Flush()
		return false
	}
	if c.srv.scram == nil {
		if user != c.srv.cfg.User {
			return fail(sqlerr.New(pgerrcode.InvalidAuthorizationSpecification, "role %q does not exist", user).
				WithHint("Log in as %q.", c.srv.cfg.User))
		}
		return true
	}
	authFailed := sqlerr.New(pgerrcode.InvalidPassword, "password authentication failed for user %q", user)
	c.be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	if err := c.be.Flush(); err != nil {
		return false
	}
	_ = c.be.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := c.be.Receive()
	if err != nil {
		return false
	}
	initial, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || initial.AuthMechanism != "SCRAM-SHA-256" {
		return fail(sqlerr.New(pgerrcode.ProtocolViolation, "expected SASL initial response with SCRAM-SHA-256"))
	}
	x := &scramExchange{cred: c.srv.scram}
	serverFirst, err := x.first(string(initial.Data))
	if err != nil {
		return fail(sqlerr.New(pgerrcode.ProtocolViolation, "scram: %v", err))
	}
	c.be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if err := c.be.Flush(); err != nil {
		return false
	}
	_ = c.be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	msg, err = c.be.Receive()
	if err != nil {
		return false
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return fail(sqlerr.New(pgerrcode.ProtocolViolation, "expected SASL response"))
	}
	serverFinal, good, err := x.final(string(resp.Data))
	if err != nil {
		return fail(sqlerr.New(pgerrcode.ProtocolViolation, "scram: %v", err))
	}
	// Check the user after the exchange so that a wrong user and a wrong
	// password look alike, as in Postgres.
	if !good || user != c.srv.cfg.User {
		return fail(authFailed)
	}
	c.be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)})
	_ = c.be.SetAuthType(pgproto3.AuthTypeOk)
	return true
}

// loop reads and handles messages until the client terminates.
func (c *conn) loop(ctx context.Context) error {
	for {
		msg, err := c.be.Receive()
		if err != nil {
			var tooBig *pgproto3.ExceededMaxBodyLenErr
			if errors.As(err, &tooBig) {
				c.sendError(fatal(sqlerr.New(pgerrcode.ProgramLimitExceeded,
					"message of %d bytes exceeds the limit of %d bytes", tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen)))
				_ = c.be.Flush()
			}
			return err
		}
		if c.ext.skipToSync {
			if _, ok := msg.(*pgproto3.Sync); !ok {
				if _, ok := msg.(*pgproto3.Terminate); !ok {
					continue
				}
			}
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			c.simpleQuery(ctx, m.String)
		case *pgproto3.Parse:
			c.handleExtended(ctx, func(ctx context.Context) error { return c.parse(ctx, m) })
		case *pgproto3.Bind:
			c.handleExtended(ctx, func(ctx context.Context) error { return c.bind(m) })
		case *pgproto3.Describe:
			c.handleExtended(ctx, func(ctx context.Context) error { return c.describe(m) })
		case *pgproto3.Execute:
			c.handleExtended(ctx, func(ctx context.Context) error { return c.execute(ctx, m) })
		case *pgproto3.Close:
			c.handleExtended(ctx, func(ctx context.Context) error { return c.closeMsg(ctx, m) })
		case *pgproto3.Sync:
			c.ext.skipToSync = false
			c.ext.closeUnnamedPortal()
			c.readyForQuery()
		case *pgproto3.Flush:
		case *pgproto3.Terminate:
			return nil
		case *pgproto3.FunctionCall:
			c.sendError(sqlerr.New(pgerrcode.FeatureNotSupported, "the function call protocol is not supported"))
			c.readyForQuery()
		case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
			// Stray COPY messages outside a COPY are ignored, as Postgres does.
			continue
		default:
			c.sendError(sqlerr.New(pgerrcode.ProtocolViolation, "unexpected message %T", msg))
		}
		if err := c.be.Flush(); err != nil {
			return err
		}
	}
}

// run runs f with a context that a CancelRequest can cancel, turning a panic
// into an error for this session alone.
func (c *conn) run(ctx context.Context, f func(ctx context.Context) error) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.running = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = nil
		c.mu.Unlock()
		cancel()
		if r := recover(); r != nil {
			c.log.ErrorContext(ctx, "panic in session", "panic", r, "stack", string(debug.Stack()))
			err = sqlerr.New(pgerrcode.InternalError, "internal error: %v", r)
		}
	}()
	return f(ctx)
}

func (c *conn) cancelRunning() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running != nil {
		c.running()
	}
}

func (c *conn) simpleQuery(ctx context.Context, sql string) {
	// A simple query ends any unnamed portal/statement, as in Postgres.
	c.ext.closeUnnamed(ctx)
	w := &streamWriter{c: c, describe: true}
	err := c.run(ctx, func(ctx context.Context) error { return c.sess.Query(ctx, sql, w) })
	if err != nil {
		c.sendError(sqlerr.From(err))
	}
	c.readyForQuery()
}

func (c *conn) readyForQuery() {
	for k, v := range c.sess.ParameterChanges() {
		c.be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	c.be.Send(&pgproto3.ReadyForQuery{TxStatus: c.sess.TxStatus()})
}

// streamWriter sends results straight to the client.
type streamWriter struct {
	c        *conn
	describe bool // send RowDescription on Fields (simple protocol)
	formats  []int16
	rows     int
}

func (w *streamWriter) Fields(fields []pgproto3.FieldDescription) error {
	if w.describe {
		w.c.be.Send(&pgproto3.RowDescription{Fields: fields})
	}
	return nil
}

func (w *streamWriter) Row(values [][]byte) error {
	w.c.be.Send(&pgproto3.DataRow{Values: values})
	w.rows++
	if w.rows%512 == 0 {
		return w.c.be.Flush()
	}
	return nil
}

func (w *streamWriter) Complete(tag string) error {
	w.c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return nil
}

func (w *streamWriter) EmptyQuery() error {
	w.c.be.Send(&pgproto3.EmptyQueryResponse{})
	return nil
}

func (w *streamWriter) Notice(n *sqlerr.Error) error {
	w.c.sendNotice(n)
	return nil
}
