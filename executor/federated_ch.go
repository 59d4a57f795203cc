package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// Queries on ClickHouse peers: SELECT ... FROM ch.table (or ch.db.table) and
// EXECUTE ch('...'). The text, peer qualifiers removed, goes to ClickHouse
// over the native protocol; the results come back as Postgres types
// (federated_ch_types.go). Federated queries run with the setting
// readonly = 2, so the server refuses any write; EXECUTE runs as it is.

// chConn is a session's connection to a ClickHouse peer.
type chConn struct {
	conn    driver.Conn
	created time.Time // the peer's creation time: a re-created peer gets a new connection
	// readOnly: the peer's user is read-only on the server already (a
	// readonly profile), which then refuses to have the setting changed.
	readOnly bool
}

// chConnOf returns the session's connection to ClickHouse peer p, opening
// it on first use and again when the peer was re-created or the connection
// failed.
func (s *session) chConnOf(ctx context.Context, p catalog.Peer) (*chConn, error) {
	if cc, ok := s.chConns[p.Name]; ok {
		if cc.created.Equal(p.CreatedAt) {
			return cc, nil
		}
		s.closeCH(p.Name)
	}
	cfg, err := clickhouse.ParsePeerOptions(p.Options)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", p.Name, err)
	}
	conn, err := cfg.Open(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, peerConnectError(err, "peer %q", p.Name)
	}
	var ro string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'readonly'").Scan(&ro); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection, "connect to peer %q: %v", p.Name, err)
	}
	if s.chConns == nil {
		s.chConns = make(map[string]*chConn)
	}
	cc := &chConn{conn: conn, created: p.CreatedAt, readOnly: ro != "0"}
	s.chConns[p.Name] = cc
	return cc, nil
}

// closeCH closes the session's connection to ClickHouse peer name, if any.
func (s *session) closeCH(name string) {
	if cc, ok := s.chConns[name]; ok {
		_ = cc.conn.Close()
		delete(s.chConns, name)
	}
}

// query runs sql. readOnly runs it with readonly = 2 (reads and settings
// only) unless the user is read-only already. A statement that returns no
// result at all (DDL) is io.EOF.
func (cc *chConn) query(ctx context.Context, sql string, readOnly bool) (driver.Rows, error) {
	if readOnly && !cc.readOnly {
		ctx = chgo.Context(ctx, chgo.WithSettings(chgo.Settings{"readonly": 2}))
	}
	return cc.conn.Query(ctx, sql)
}

// chPeer reads ClickHouse peer name from the catalog.
func (s *session) chPeer(ctx context.Context, name string) (catalog.Peer, error) {
	p, err := s.ex.cfg.Store.GetPeer(ctx, name)
	if errors.Is(err, catalog.ErrNotFound) {
		return p, sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", name)
	}
	if err == nil && p.Type != string(sqlext.PeerClickHouse) {
		// Dropped and re-created as another kind of peer since prepared.
		return p, sqlerr.New(pgerrcode.FeatureNotSupported, "peer %q is no longer a ClickHouse peer", name).
			WithHint("Prepare the statement again.")
	}
	return p, err
}

// types returns the session's pgtype map.
func (s *session) types() *pgtype.Map {
	if s.typeMap == nil {
		s.typeMap = pgtype.NewMap()
	}
	return s.typeMap
}

// chSQLStates maps ClickHouse error codes to SQLSTATEs; others are
// fdw_error (HV000).
var chSQLStates = map[int32]string{
	43:  pgerrcode.DatatypeMismatch,                  // ILLEGAL_TYPE_OF_ARGUMENT
	46:  pgerrcode.UndefinedFunction,                 // UNKNOWN_FUNCTION
	47:  pgerrcode.UndefinedColumn,                   // UNKNOWN_IDENTIFIER
	53:  pgerrcode.DatatypeMismatch,                  // TYPE_MISMATCH
	60:  pgerrcode.UndefinedTable,                    // UNKNOWN_TABLE
	62:  pgerrcode.SyntaxError,                       // SYNTAX_ERROR
	81:  pgerrcode.InvalidCatalogName,                // UNKNOWN_DATABASE
	159: pgerrcode.QueryCanceled,                     // TIMEOUT_EXCEEDED
	164: pgerrcode.ReadOnlySQLTransaction,            // READONLY
	241: pgerrcode.OutOfMemory,                       // MEMORY_LIMIT_EXCEEDED
	386: pgerrcode.DatatypeMismatch,                  // NO_COMMON_TYPE
	394: pgerrcode.QueryCanceled,                     // QUERY_WAS_CANCELLED
	497: pgerrcode.InsufficientPrivilege,             // ACCESS_DENIED
	516: pgerrcode.InvalidAuthorizationSpecification, // AUTHENTICATION_FAILED
}

// chFailed turns an error of a query on ClickHouse peer into a SQL error:
// the server's exceptions keep their message, prefixed with the peer, and
// get a fitting SQLSTATE; anything else (the connection failed) also
// closes the connection, so that the next query opens a new one.
// withParams adds a hint to type errors of a statement with parameters.
func (s *session) chFailed(ctx context.Context, peer string, err error, withParams bool) error {
	var ex *chgo.Exception
	if errors.As(err, &ex) {
		code, ok := chSQLStates[ex.Code]
		if !ok {
			code = pgerrcode.FDWError
		}
		e := sqlerr.New(code, "clickhouse peer %q: %s", peer, strings.TrimSpace(ex.Message)).
			WithDetail("ClickHouse error code %d.", ex.Code)
		if withParams && code == pgerrcode.DatatypeMismatch {
			e = e.WithHint("A parameter not compared directly with a column is sent as a string; " +
				"write CAST($1 AS Int64) (or the type it stands for).")
		}
		return e
	}
	s.closeCH(peer)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return sqlerr.New(pgerrcode.ConnectionFailure, "clickhouse peer %q: connection lost: %v", peer, err)
	}
	var se *sqlerr.Error
	if errors.As(err, &se) {
		return se
	}
	return sqlerr.New(pgerrcode.FDWError, "clickhouse peer %q: %v", peer, err)
}

// federatedCH runs a federated query on a ClickHouse peer in the simple
// protocol.
func (s *session) federatedCH(ctx context.Context, r route, w server.ResultWriter) error {
	cc, err := s.chConnOf(ctx, r.target)
	if err != nil {
		return err
	}
	bytea, err := s.chByteaColumns(ctx, cc, tablesOf(r.sql))
	if err != nil {
		return err
	}
	rows, err := cc.query(ctx, r.sql, true)
	if err != nil {
		return s.chFailed(ctx, r.peer, err, false)
	}
	return s.relayCH(ctx, r.peer, rows, nil, nil, w, bytea, true)
}

// relayCH copies rows to w and closes them. want are the column types the
// statement was described with (nil: none, the simple protocol); describe
// sends the columns first, those in bytea as bytea. formats are the
// client's result formats.
func (s *session) relayCH(ctx context.Context, peer string, rows driver.Rows, want []chType, formats []int16,
	w server.ResultWriter, bytea chBytea, describe bool) error {
	defer rows.Close()
	cts := rows.ColumnTypes()
	types := make([]chType, len(cts))
	for i, ct := range cts {
		types[i] = chTypeOf(ct.DatabaseTypeName())
	}
	if !describe {
		var err error
		if types, err = sameColumns(want, types); err != nil {
			return err
		}
	} else if len(types) > 0 {
		bytea.mark(rows.Columns(), types)
		if err := w.Fields(chFields(rows.Columns(), types)); err != nil {
			return err
		}
	}
	dest := make([]any, len(cts))
	for i, ct := range cts {
		dest[i] = reflect.New(ct.ScanType()).Interface()
	}
	rw := chRowWriter{m: s.types(), types: types, formats: formats, peer: peer, names: rows.Columns()}
	n := 0
	for rows.Next() {
		// clickhouse-go leaves some destinations as they were for a NULL
		// (Nullable(Decimal), ...): start every row from zero values.
		for _, d := range dest {
			e := reflect.ValueOf(d).Elem()
			e.Set(reflect.Zero(e.Type()))
		}
		if err := rows.Scan(dest...); err != nil {
			return s.chFailed(ctx, peer, err, false)
		}
		values, err := rw.row(dest)
		if err != nil {
			return err
		}
		if err := w.Row(values); err != nil {
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return s.chFailed(ctx, peer, err, false)
	}
	return w.Complete(fmt.Sprintf("SELECT %d", n))
}

// sameColumns checks the columns a statement returns against those it was
// described with, and returns the types to send them as: a column described
// as text may hold anything (its values are sent in their text form).
func sameColumns(want, got []chType) ([]chType, error) {
	if len(got) != len(want) {
		if len(want) == 0 {
			return nil, sqlerr.New(pgerrcode.FeatureNotSupported,
				"the statement returned rows, which the extended protocol cannot describe before running it").
				WithHint("Run it with the simple query protocol, or as a SELECT.")
		}
		return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "cached plan must not change result type")
	}
	for i := range got {
		switch {
		case got[i].oid == want[i].oid:
		case want[i].oid == pgtype.ByteaOID && got[i].oid == pgtype.TextOID && got[i].base == "String" && got[i].elem == nil:
			got[i].oid = pgtype.ByteaOID // described as a marked bytea column
		case want[i].oid == pgtype.TextOID:
			got[i].oid = pgtype.TextOID
		default:
			return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "cached plan must not change result type")
		}
	}
	return got, nil
}

// chStatement is a statement prepared for a ClickHouse peer. ClickHouse
// keeps nothing: Prepare describes it by running it with no rows, and
// Execute binds the parameters into the text and runs it.
type chStatement struct {
	s        *session
	peer     string
	sql      string    // the text for ClickHouse, parameters unbound
	params   *chParams // nil for EXECUTE
	oids     []uint32  // parameter types
	fields   []pgproto3.FieldDescription
	types    []chType
	readOnly bool // a federated query (else EXECUTE)
}

var _ server.Statement = (*chStatement)(nil)

// prepareCH prepares a federated query on a ClickHouse peer: it infers the
// parameters' types and describes the result by running the query wrapped
// as SELECT * FROM (...) LIMIT 0, parameters bound to NULL (or 0).
func (s *session) prepareCH(ctx context.Context, r route, paramOIDs []uint32) (*chStatement, error) {
	params, err := chParamsOf(r.sql)
	if err != nil {
		return nil, err
	}
	cc, err := s.chConnOf(ctx, r.target)
	if err != nil {
		return nil, err
	}
	var columns []chColumn
	if q := params.columnQuery(); q != "" {
		// Without them (system.columns unreadable?) parameters are text.
		if columns, err = s.chColumns(ctx, cc, q); err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	oids := params.paramOIDs(paramOIDs, columns)
	st := &chStatement{s: s, peer: r.peer, sql: r.sql, params: params, oids: oids, readOnly: true}
	if err := st.describe(ctx, cc, params.bind(r.sql, placeholders(oids)), params.tables); err != nil {
		return nil, err
	}
	return st, nil
}

// chColumns reads the columns of a statement's tables (see columnQuery).
func (s *session) chColumns(ctx context.Context, cc *chConn, query string) ([]chColumn, error) {
	rows, err := cc.query(ctx, query, true)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []chColumn
	for rows.Next() {
		var c chColumn
		var current uint8
		if err := rows.Scan(&current, &c.db, &c.table, &c.name, &c.typ); err != nil {
			return nil, err
		}
		c.current = current == 1
		out = append(out, c)
	}
	return out, rows.Err()
}

// describe learns the statement's result columns from sql, the statement
// with its parameters bound to placeholders; tables are the statement's
// (for its bytea columns).
func (st *chStatement) describe(ctx context.Context, cc *chConn, sql string, tables []chTable) error {
	bytea, err := st.s.chByteaColumns(ctx, cc, tables)
	if err != nil {
		return err
	}
	// The newline ends a -- comment at the end of the statement.
	rows, err := cc.query(ctx, "SELECT * FROM (\n"+sql+"\n) LIMIT 0", true)
	if err != nil {
		return st.s.chFailed(ctx, st.peer, err, st.params != nil && st.params.count > 0)
	}
	defer rows.Close()
	cts := rows.ColumnTypes()
	st.types = make([]chType, len(cts))
	for i, ct := range cts {
		st.types[i] = chTypeOf(ct.DatabaseTypeName())
	}
	bytea.mark(rows.Columns(), st.types)
	st.fields = chFields(rows.Columns(), st.types)
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		return st.s.chFailed(ctx, st.peer, err, false)
	}
	return nil
}

// ParamOIDs implements server.Statement.
func (st *chStatement) ParamOIDs() []uint32 { return st.oids }

// Fields implements server.Statement.
func (st *chStatement) Fields() []pgproto3.FieldDescription { return st.fields }

// Close implements server.Statement: there is nothing to release.
func (st *chStatement) Close(context.Context) error { return nil }

// Execute implements server.Statement.
func (st *chStatement) Execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16, w server.ResultWriter) error {
	err := st.execute(ctx, params, paramFormats, resultFormats, w)
	if err != nil {
		st.s.abortBlock(ctx)
	}
	return err
}

func (st *chStatement) execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16, w server.ResultWriter) error {
	if st.s.TxStatus() == 'E' {
		return errAborted()
	}
	if len(params) != len(st.oids) {
		return sqlerr.New(pgerrcode.ProtocolViolation, "bind message supplies %d parameters, but prepared statement requires %d",
			len(params), len(st.oids))
	}
	p, err := st.s.chPeer(ctx, st.peer)
	if err != nil {
		return err
	}
	cc, err := st.s.chConnOf(ctx, p)
	if err != nil {
		return err
	}
	sql := st.sql
	if len(st.oids) > 0 {
		lits := make([]string, len(st.oids))
		for i, oid := range st.oids {
			if lits[i], err = chLiteral(st.s.types(), oid, formatAt(paramFormats, i), params[i]); err != nil {
				return err
			}
		}
		sql = st.params.bind(st.sql, lits)
	}
	rows, err := cc.query(ctx, sql, st.readOnly)
	if err != nil {
		if errors.Is(err, io.EOF) && !st.readOnly && st.fields == nil {
			return w.Complete("EXECUTE")
		}
		return st.s.chFailed(ctx, st.peer, err, len(st.oids) > 0)
	}
	if len(rows.ColumnTypes()) == 0 && st.fields == nil {
		rows.Close()
		return w.Complete("EXECUTE")
	}
	return st.s.relayCH(ctx, st.peer, rows, st.types, resultFormats, w, nil, false)
}

// executeCH runs EXECUTE ch('...') on a ClickHouse peer in the simple
// protocol: the text as it is, one statement, with the peer's rights; its
// rows if it returns any.
func (s *session) executeCH(ctx context.Context, st *sqlext.ExecutePeer, p catalog.Peer, w server.ResultWriter) error {
	if err := checkCHExecute(st); err != nil {
		return err
	}
	cc, err := s.chConnOf(ctx, p)
	if err != nil {
		return err
	}
	var bytea chBytea
	if kw := firstWord(st.Query); kw == "select" || kw == "with" {
		if bytea, err = s.chByteaColumns(ctx, cc, tablesOf(st.Query)); err != nil {
			return err
		}
	}
	rows, err := cc.query(ctx, st.Query, false)
	if errors.Is(err, io.EOF) {
		return w.Complete("EXECUTE")
	}
	if err != nil {
		return s.chFailed(ctx, st.Peer, err, false)
	}
	if len(rows.ColumnTypes()) == 0 {
		rows.Close()
		return w.Complete("EXECUTE")
	}
	return s.relayCH(ctx, st.Peer, rows, nil, nil, w, bytea, true)
}

// prepareExecuteCH prepares EXECUTE ch('...') for the extended protocol. A
// query starting with SELECT or WITH is described as a federated query is;
// any other statement is expected to return no rows.
func (s *session) prepareExecuteCH(ctx context.Context, st *sqlext.ExecutePeer, p catalog.Peer) (*chStatement, error) {
	if err := checkCHExecute(st); err != nil {
		return nil, err
	}
	cc, err := s.chConnOf(ctx, p)
	if err != nil {
		return nil, err
	}
	cs := &chStatement{s: s, peer: st.Peer, sql: st.Query}
	if w := firstWord(st.Query); w == "select" || w == "with" {
		if err := cs.describe(ctx, cc, st.Query, tablesOf(st.Query)); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// checkCHExecute refuses an INSERT that carries its data (VALUES, FORMAT):
// over the native protocol ClickHouse expects the rows as a separate data
// block, which EXECUTE does not send, and would wait for them.
func checkCHExecute(st *sqlext.ExecutePeer) error {
	if firstWord(st.Query) != "insert" {
		return nil
	}
	if res, err := pg_query.Scan(st.Query); err == nil {
		for _, t := range res.GetTokens() {
			if t.GetToken() == pg_query.Token_SELECT {
				return nil
			}
		}
	}
	return sqlerr.New(pgerrcode.FeatureNotSupported, "INSERT with VALUES or FORMAT on ClickHouse peer %q is not supported", st.Peer).
		WithPosition(int(st.PeerPos)).
		WithHint("Use INSERT INTO t SELECT ..., e.g. INSERT INTO t SELECT 1, 'a'.")
}

// firstWord returns the first word of sql in lower case, after blanks and
// comments.
func firstWord(sql string) string {
	i := 0
	for i < len(sql) {
		switch {
		case isSpace(sql[i]):
			i++
		case strings.HasPrefix(sql[i:], "--"):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				return ""
			}
			i += j + 1
		case strings.HasPrefix(sql[i:], "/*"):
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				return ""
			}
			i += j + 4
		default:
			j := i
			for j < len(sql) && (sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z') {
				j++
			}
			return strings.ToLower(sql[i:j])
		}
	}
	return ""
}
