package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// reportedParams are the run-time parameters relayed to the client.
var reportedParams = []string{"server_version", "server_encoding", "client_encoding", "DateStyle",
	"IntervalStyle", "TimeZone", "integer_datetimes", "standard_conforming_strings", "is_superuser"}

// forwardedParams are start-up parameters of the client passed on to the
// catalog and peer connections, so results are formatted as it asked.
var forwardedParams = []string{"DateStyle", "TimeZone", "IntervalStyle", "extra_float_digits", "application_name"}

// abortStatement fails on purpose, to put the catalog's transaction block
// into the failed state after an error of Sluice's own; its text explains
// it in the catalog server's log.
const abortStatement = "SELECT 'sluice: an error aborted this transaction block'::pg_catalog.int4"

// session is one client's session. Used by one goroutine at a time.
type session struct {
	ex   *Executor
	info server.SessionInfo

	id uint64 // unique among the sessions of the process
	// cat is the catalog connection the session holds (read-only), nil when
	// it holds none; held is its pool entry (catalog_pool.go) and last the
	// entry it held last, which it asks for again.
	cat  *pgconn.PgConn
	held *catConn
	last *catConn
	// sticky pins the catalog connection to the session: a SQL-level
	// PREPARE, a held cursor or LISTEN left state on it.
	sticky bool
	// params are the reported parameters as of the last connection held.
	params   map[string]string
	reported map[string]string
	// Connections to peers: for EXECUTE (read-write) and for federated
	// queries (peer.schema.table, opened read-only), by peer name.
	peers   map[string]*peerConn
	readers map[string]*peerConn
	// fedConns are the connections to peers whose connector reads for
	// sessions (ClickHouse), for federated queries and EXECUTE alike
	// (federated.go), by peer name; made on first use.
	fedConns map[string]*federatedConn
	// settings are the session-level SET/RESET statements that succeeded on
	// the catalog, replayed on every peer connection (see settings.go);
	// pending are those made inside the current transaction block, applied
	// at COMMIT.
	settings []setting
	pending  []setting
	// setVersion counts changes of settings; a pooled connection that has
	// the session's settings of this version needs no reset.
	setVersion uint64
	notices    server.ResultWriter // where backend notices go while a statement runs
	cursors    peerCursors         // cursors on peers and their transactions (peercursor.go)

	// resultFormats are the result formats a prepared statement of ours is
	// executed with (Bind's; nil: all text), while it runs.
	resultFormats []int16
}

type peerConn struct {
	conn    *pgconn.PgConn
	created time.Time // the peer's creation time: a re-created peer gets a new connection
	// funcs are the allow-list's verdicts on function names, asked of this
	// connection's server (read-only connections only; peerguard_funcs.go).
	funcs map[string]funcVerdict
}

// dialCatalog opens a pooled catalog connection, read-only, whose notices
// go to the session holding it (cc's holder).
func (e *Executor) dialCatalog(ctx context.Context, cc *catConn) (*pgconn.PgConn, error) {
	conn, err := e.dialCatalogURL(ctx, e.catalogURL(), cc)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == pgerrcode.InvalidPassword && e.cfg.Store.ReaderIsolated() {
		// Another process sharing the catalog set a new password.
		if url, rerr := e.cfg.Store.RefreshReaderURL(ctx); rerr == nil {
			conn, err = e.dialCatalogURL(ctx, url, cc)
		}
	}
	return conn, err
}

func (e *Executor) dialCatalogURL(ctx context.Context, url string, cc *catConn) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse catalog URL: %w", err)
	}
	cfg.RuntimeParams["search_path"] = catalog.StatusSchema
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	cfg.RuntimeParams["application_name"] = "sluice-session"
	cfg.OnNotice = func(pc *pgconn.PgConn, n *pgconn.Notice) {
		if h := cc.holder; h != nil {
			h.onNotice(pc, n)
		}
	}
	cfg.BuildContextWatcherHandler = cancelHandler
	return pgconn.ConnectConfig(ctx, cfg)
}

func (s *session) forwardParams(dst map[string]string) {
	for _, k := range forwardedParams {
		for pk, v := range s.info.Params {
			if strings.EqualFold(pk, k) && v != "" {
				dst[k] = v
			}
		}
	}
}

// cancelHandler makes a cancelled context send the server a cancel request,
// keeping the connection usable, rather than closing it.
func cancelHandler(pc *pgconn.PgConn) ctxwatch.Handler {
	return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 10 * time.Second}
}

// onNotice relays a backend's notice, every field of it, to the client.
func (s *session) onNotice(_ *pgconn.PgConn, n *pgconn.Notice) {
	if s.notices != nil {
		_ = s.notices.Notice(sqlerr.FromPgError((*pgconn.PgError)(n)))
	}
}

// catalogConn returns the catalog connection the session holds, borrowing
// one from the pool if it holds none (catalog_pool.go). A connection found
// lost is discarded, with the session state that lived on it.
func (s *session) catalogConn(ctx context.Context) (*pgconn.PgConn, error) {
	if s.held != nil {
		if !s.cat.IsClosed() {
			return s.cat, nil
		}
		s.releaseCatalog(ctx)
	}
	var cc *catConn
	for attempt := 0; ; attempt++ {
		var err error
		cc, err = s.ex.pool.acquire(ctx, s.last)
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) || isConnectError(err) {
				return nil, catalogConnectError(err)
			}
			return nil, err
		}
		err = s.adopt(ctx, cc)
		if err == nil {
			break
		}
		s.ex.pool.release(ctx, cc) // closed: discarded
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if attempt >= s.ex.cfg.CatalogPoolSize {
			// Idle connections lost (the catalog's server restarted, say)
			// are discarded one by one; a fresh one failing too is an error.
			return nil, err
		}
	}
	cc.holder, cc.used = s, true
	s.held, s.cat, s.last = cc, cc.conn, cc
	return s.cat, nil
}

// isConnectError reports whether err is pgconn's failure to connect.
func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// releaseCatalog gives the session's catalog connection back to the pool
// unless session state is pinned on it: an open transaction block, or the
// SQL-level prepared statements, held cursors or LISTENs that make the
// session sticky (catalog_pool.go). A lost connection is discarded.
func (s *session) releaseCatalog(ctx context.Context) {
	cc := s.held
	if cc == nil {
		return
	}
	lost := cc.conn.IsClosed()
	if !lost && (s.sticky || cc.conn.TxStatus() != 'I') {
		return
	}
	if lost {
		s.sticky, s.pending = false, nil
	} else {
		s.snapshotParams()
	}
	s.held, s.cat = nil, nil
	s.ex.pool.release(ctx, cc)
}

// snapshotParams keeps the reported run-time parameters of the connection
// the session holds, for ParameterChanges while it holds none.
func (s *session) snapshotParams() {
	if s.params == nil {
		s.params = make(map[string]string)
	}
	for _, k := range reportedParams {
		if v := s.cat.ParameterStatus(k); v != "" {
			s.params[k] = v
		}
	}
}

// Query implements server.Session.
func (s *session) Query(ctx context.Context, sql string, w server.ResultWriter) error {
	s.notices = w
	defer func() { s.notices = nil }()
	err := s.query(ctx, sql, w)
	if err != nil {
		s.abortBlock(ctx)
	}
	s.releaseCatalog(ctx)
	return forClient(err)
}

func (s *session) query(ctx context.Context, sql string, w server.ResultWriter) error {
	stmts, err := parse(ctx, sql)
	if err != nil {
		return err
	}
	if len(stmts) == 0 {
		return w.EmptyQuery()
	}
	for _, st := range stmts {
		if err := s.exec(ctx, sql, st, w); err != nil {
			return err
		}
	}
	return nil
}

// abortBlock puts the catalog's transaction block, if one is open, into the
// failed state, as any error inside a block does in Postgres: an error of
// Sluice's own (a refused statement, a peer's error) leaves the catalog's
// transaction untouched, so a failing statement is sent to it.
func (s *session) abortBlock(ctx context.Context) {
	if s.cat == nil || s.cat.IsClosed() || s.cat.TxStatus() != 'T' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	saved := s.notices
	s.notices = nil
	defer func() { s.notices = saved }()
	_, _ = s.cat.Exec(ctx, abortStatement).ReadAll()
}

// enforceReadOnly turns read-only mode back on for the catalog connection
// if a statement turned it off for later transactions (a set_config() call
// whose arguments Sluice's checks cannot see; Postgres 14 and later report
// the setting). Within a transaction block it waits: the block's own mode
// was fixed when it began.
func (s *session) enforceReadOnly(ctx context.Context) {
	if s.cat == nil || s.cat.IsClosed() || s.cat.TxStatus() != 'I' {
		return
	}
	if v := s.cat.ParameterStatus("default_transaction_read_only"); v == "" || v == "on" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.cat.Exec(ctx, "SET default_transaction_read_only = on").ReadAll(); err != nil {
		s.cat.Close(ctx) // the next statement reconnects, read-only
	}
}

// bigParses admits one large query string at a time to the parser: parsing
// costs up to about 400 bytes of memory per token (sqlext.MaxTokens bounds
// one query string), so sessions sending large statements at once wait for
// each other rather than add up. Safe for concurrent use.
var bigParses = make(chan struct{}, 1)

// bigQuery is the length from which a query string waits for bigParses.
const bigQuery = 1 << 20

// parse runs the parser and turns its errors into SQL errors.
func parse(ctx context.Context, sql string) ([]sqlext.Statement, error) {
	if len(sql) >= bigQuery {
		select {
		case bigParses <- struct{}{}:
			defer func() { <-bigParses }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	stmts, err := sqlext.Parse(sql)
	if err != nil {
		var se *sqlext.SyntaxError
		if errors.As(err, &se) {
			return nil, syntaxError(se)
		}
		return nil, sqlerr.New(pgerrcode.SyntaxError, "%v", err)
	}
	return stmts, nil
}

// syntaxError turns a parser error into a SQL error: 42601 unless the
// parser gave a code (54001 for a statement too large or too deep to parse).
func syntaxError(se *sqlext.SyntaxError) *sqlerr.Error {
	return se.SQLError()
}

// exec runs one statement in the simple protocol. full is the query string
// the statement came from, which positions in errors refer to.
func (s *session) exec(ctx context.Context, full string, st sqlext.Statement, w server.ResultWriter) error {
	switch st := st.(type) {
	case *sqlext.Passthrough:
		return s.passthrough(ctx, full, st, w)
	case *sqlext.ExecutePeer:
		return s.execute(ctx, st, w)
	}
	if err := s.checkOutsideTransaction(st); err != nil {
		return err
	}
	switch st := st.(type) {
	case *sqlext.CreatePeer:
		return s.createPeer(ctx, st, w)
	case *sqlext.DropPeer:
		return s.dropPeer(ctx, st, w)
	case *sqlext.CreateMirror, *sqlext.DropMirror, *sqlext.PauseMirror, *sqlext.ResumeMirror,
		*sqlext.ResyncMirror, *sqlext.ResyncTable, *sqlext.ExecuteMirror:
		return s.mirrorStatement(ctx, st, w)
	case *sqlext.AlterMirror:
		return s.alterMirror(ctx, st, w)
	case *sqlext.ValidateMirror:
		return s.validateMirror(ctx, st, w)
	default:
		return sqlerr.New(pgerrcode.FeatureNotSupported, "statement %T is not supported", st)
	}
}

// errAborted is Postgres' refusal of a statement in a failed transaction
// block.
func errAborted() error {
	return sqlerr.New(pgerrcode.InFailedSQLTransaction,
		"current transaction is aborted, commands ignored until end of transaction block")
}

// checkOutsideTransaction refuses Sluice's own statements inside a
// transaction block: they act on the world and cannot be rolled back.
func (s *session) checkOutsideTransaction(st sqlext.Statement) error {
	switch s.TxStatus() {
	case 'T':
		return sqlerr.New(pgerrcode.ActiveSQLTransaction, "%s cannot run inside a transaction block", verb(st))
	case 'E':
		return errAborted()
	}
	return nil
}

// verb names a statement kind for messages, e.g. "CREATE PEER".
func verb(st sqlext.Statement) string {
	switch st.(type) {
	case *sqlext.CreatePeer:
		return "CREATE PEER"
	case *sqlext.DropPeer:
		return "DROP PEER"
	case *sqlext.ExecutePeer:
		return "EXECUTE"
	case *sqlext.CreateMirror:
		return "CREATE MIRROR"
	case *sqlext.DropMirror:
		return "DROP MIRROR"
	case *sqlext.PauseMirror:
		return "PAUSE MIRROR"
	case *sqlext.ResumeMirror:
		return "RESUME MIRROR"
	case *sqlext.ResyncMirror:
		return "RESYNC MIRROR"
	case *sqlext.ResyncTable:
		return "RESYNC TABLE"
	case *sqlext.ExecuteMirror:
		return "EXECUTE MIRROR"
	case *sqlext.AlterMirror:
		return "ALTER MIRROR"
	case *sqlext.ValidateMirror:
		return "VALIDATE MIRROR"
	}
	return "statement"
}

// TxStatus implements server.Session: the catalog connection's status
// ('I' when the session holds none: it gives back only idle ones).
func (s *session) TxStatus() byte {
	if s.cat == nil || s.cat.IsClosed() {
		return 'I'
	}
	return s.cat.TxStatus()
}

// ParameterChanges implements server.Session. The values are the catalog
// connection's own, is_superuser included: sessions log in as the reader
// role, which is not a superuser.
func (s *session) ParameterChanges() map[string]string {
	changed := make(map[string]string)
	if s.reported == nil {
		s.reported = make(map[string]string)
	}
	for _, k := range reportedParams {
		v := s.params[k]
		if s.cat != nil {
			v = s.cat.ParameterStatus(k)
		}
		if v != "" && s.reported[k] != v {
			s.reported[k] = v
			changed[k] = v
		}
	}
	return changed
}

// Close implements server.Session.
func (s *session) Close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s.held != nil {
		// Inside a transaction block the pool closes it rather than keep it.
		s.sticky = false
		s.releaseCatalog(ctx)
		if s.held != nil {
			cc := s.held
			s.held, s.cat = nil, nil
			s.ex.pool.release(ctx, cc)
		}
	}
	for _, pc := range s.peers {
		pc.conn.Close(ctx)
	}
	for _, pc := range s.readers {
		pc.conn.Close(ctx)
	}
	for name := range s.fedConns {
		s.closeFederated(name)
	}
}

// stmtSeq numbers the statements sessions prepare on backends: catalog
// connections are shared, so names are unique in the process.
var stmtSeq atomic.Uint64

// sessionIDs numbers sessions.
var sessionIDs atomic.Uint64

// nextName returns a fresh name for a statement prepared on a backend.
func (s *session) nextName() string {
	return fmt.Sprintf("sluice_%d", stmtSeq.Add(1))
}
