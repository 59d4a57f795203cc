package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"
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

// session is one client's session. Used by one goroutine at a time.
type session struct {
	ex   *Executor
	info server.SessionInfo

	cat      *pgconn.PgConn // catalog connection (read-only)
	reported map[string]string
	peers    map[string]*peerConn
	notices  server.ResultWriter // where backend notices go while a statement runs
	seq      int
}

type peerConn struct {
	conn    *pgconn.PgConn
	created time.Time // the peer's creation time: a re-created peer gets a new connection
}

func (s *session) connectCatalog(ctx context.Context) error {
	cfg, err := pgconn.ParseConfig(s.ex.cfg.CatalogURL)
	if err != nil {
		return fmt.Errorf("parse catalog URL: %w", err)
	}
	cfg.RuntimeParams["search_path"] = catalog.StatusSchema
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	s.forwardParams(cfg.RuntimeParams)
	if s.info.ApplicationName == "" {
		cfg.RuntimeParams["application_name"] = "sluice-session"
	}
	cfg.OnNotice = s.onNotice
	cfg.BuildContextWatcherHandler = cancelHandler
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return sqlerr.New(pgerrcode.SQLServerRejectedEstablishmentOfSQLConnection, "connect to catalog: %v", err)
	}
	s.cat = conn
	return nil
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

func (s *session) onNotice(_ *pgconn.PgConn, n *pgconn.Notice) {
	if s.notices != nil {
		_ = s.notices.Notice(n.Severity, n.Message, n.Detail)
	}
}

// catalogConn returns the catalog connection, reconnecting if it was lost.
func (s *session) catalogConn(ctx context.Context) (*pgconn.PgConn, error) {
	if s.cat == nil || s.cat.IsClosed() {
		if err := s.connectCatalog(ctx); err != nil {
			return nil, err
		}
	}
	return s.cat, nil
}

// Query implements server.Session.
func (s *session) Query(ctx context.Context, sql string, w server.ResultWriter) error {
	stmts, err := parse(sql)
	if err != nil {
		return err
	}
	if len(stmts) == 0 {
		return w.EmptyQuery()
	}
	s.notices = w
	defer func() { s.notices = nil }()
	for _, st := range stmts {
		if err := s.exec(ctx, sql, st, w); err != nil {
			return err
		}
	}
	return nil
}

// parse runs the parser and turns its errors into SQL errors.
func parse(sql string) ([]sqlext.Statement, error) {
	stmts, err := sqlext.Parse(sql)
	if err != nil {
		var se *sqlext.SyntaxError
		if errors.As(err, &se) {
			return nil, sqlerr.New(pgerrcode.SyntaxError, "%s", se.Msg).WithPosition(int(se.Pos))
		}
		return nil, sqlerr.New(pgerrcode.SyntaxError, "%v", err)
	}
	return stmts, nil
}

// exec runs one statement in the simple protocol.
func (s *session) exec(ctx context.Context, full string, st sqlext.Statement, w server.ResultWriter) error {
	if p, ok := st.(*sqlext.Passthrough); ok {
		return s.passthrough(ctx, full, p, w)
	}
	if err := s.checkOutsideTransaction(st); err != nil {
		return err
	}
	switch st := st.(type) {
	case *sqlext.CreatePeer:
		return s.createPeer(ctx, st, w)
	case *sqlext.DropPeer:
		return s.dropPeer(ctx, st, w)
	case *sqlext.ExecutePeer:
		return s.executePeer(ctx, st, w)
	case *sqlext.CreateMirror, *sqlext.DropMirror, *sqlext.PauseMirror, *sqlext.ResumeMirror,
		*sqlext.ResyncMirror, *sqlext.ResyncTable, *sqlext.ExecuteMirror:
		return s.mirrorStatement(ctx, st, w)
	default:
		return sqlerr.New(pgerrcode.FeatureNotSupported, "statement %T is not supported", st)
	}
}

// checkOutsideTransaction refuses Sluice's own statements inside a
// transaction block: they act on the world and cannot be rolled back.
func (s *session) checkOutsideTransaction(st sqlext.Statement) error {
	switch s.TxStatus() {
	case 'T':
		return sqlerr.New(pgerrcode.ActiveSQLTransaction, "%s cannot run inside a transaction block", verb(st))
	case 'E':
		return sqlerr.New(pgerrcode.InFailedSQLTransaction,
			"current transaction is aborted, commands ignored until end of transaction block")
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
	}
	return "statement"
}

// TxStatus implements server.Session: the catalog connection's status.
func (s *session) TxStatus() byte {
	if s.cat == nil || s.cat.IsClosed() {
		return 'I'
	}
	return s.cat.TxStatus()
}

// ParameterChanges implements server.Session.
func (s *session) ParameterChanges() map[string]string {
	changed := make(map[string]string)
	if s.cat == nil {
		return changed
	}
	if s.reported == nil {
		s.reported = make(map[string]string)
	}
	for _, k := range reportedParams {
		v := s.cat.ParameterStatus(k)
		if k == "is_superuser" {
			v = "off"
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
	if s.cat != nil {
		s.cat.Close(ctx)
	}
	for _, pc := range s.peers {
		pc.conn.Close(ctx)
	}
}

// relay copies every result of rr to w. describe sends RowDescription (the
// simple protocol); federated results hide the peer's table OIDs, which mean
// nothing in the catalog.
func relay(rr *pgconn.ResultReader, w server.ResultWriter, describe, federated bool) error {
	if describe {
		if fds := rr.FieldDescriptions(); fds != nil {
			if err := w.Fields(fieldsOf(fds, federated)); err != nil {
				rr.Close()
				return err
			}
		}
	}
	for rr.NextRow() {
		if err := w.Row(rr.Values()); err != nil {
			rr.Close()
			return err
		}
	}
	tag, err := rr.Close()
	if err != nil {
		return err
	}
	return w.Complete(tag.String())
}

func fieldsOf(fds []pgconn.FieldDescription, federated bool) []pgproto3.FieldDescription {
	out := make([]pgproto3.FieldDescription, len(fds))
	for i, fd := range fds {
		out[i] = pgproto3.FieldDescription{
			Name:                 []byte(fd.Name),
			TableOID:             fd.TableOID,
			TableAttributeNumber: fd.TableAttributeNumber,
			DataTypeOID:          fd.DataTypeOID,
			DataTypeSize:         fd.DataTypeSize,
			TypeModifier:         fd.TypeModifier,
			Format:               fd.Format,
		}
		if federated {
			out[i].TableOID, out[i].TableAttributeNumber = 0, 0
		}
	}
	return out
}

// relayAll copies every result of a multi-statement Exec to w.
func relayAll(mrr *pgconn.MultiResultReader, w server.ResultWriter, federated bool) error {
	var firstErr error
	for mrr.NextResult() {
		if err := relay(mrr.ResultReader(), w, true, federated); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := mrr.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// shiftPosition moves a backend error's position from the statement's own
// text to the whole query string the client sent.
func shiftPosition(err error, full string, byteOffset int) error {
	var pe *pgconn.PgError
	if byteOffset <= 0 || !errors.As(err, &pe) || pe.Position == 0 {
		return err
	}
	e := sqlerr.From(err)
	cp := *e
	cp.Position = e.Position + utf8.RuneCountInString(full[:byteOffset])
	return &cp
}

// nextName returns a fresh name for a statement prepared on a backend.
func (s *session) nextName() string {
	s.seq++
	return fmt.Sprintf("sluice_%d", s.seq)
}
