package clickhouse

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// chStatement is a statement prepared for a ClickHouse peer. ClickHouse
// keeps nothing: Prepare describes it by running it with no rows, and
// Execute binds the parameters into the text and runs it.
type chStatement struct {
	sql      string    // the text for ClickHouse, parameters unbound
	params   *chParams // nil for EXECUTE
	oids     []uint32  // parameter types
	fields   []pgproto3.FieldDescription
	types    []chType
	readOnly bool // a federated query (else EXECUTE)
}

var _ connectors.FederatedStatement = (*chStatement)(nil)

// Prepare implements connectors.FederatedConn: it infers the parameters'
// types and describes the result by running the query wrapped as SELECT *
// FROM (...) LIMIT 0, parameters bound to NULL (or 0).
func (c *federatedConn) Prepare(ctx context.Context, sql string, paramOIDs []uint32) (connectors.FederatedStatement, error) {
	params, err := chParamsOf(sql)
	if err != nil {
		return nil, err
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	var columns []chColumn
	if q := params.columnQuery(); q != "" {
		// Without them (system.columns unreadable?) parameters are text.
		if columns, err = c.columns(ctx, q); err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	oids := params.paramOIDs(paramOIDs, columns)
	st := &chStatement{sql: sql, params: params, oids: oids, readOnly: true}
	if err := st.describe(ctx, c, params.bind(sql, placeholders(oids)), params.tables); err != nil {
		return nil, err
	}
	return st, nil
}

// columns reads the columns of a statement's tables (see columnQuery).
func (c *federatedConn) columns(ctx context.Context, query string) ([]chColumn, error) {
	rows, err := c.query(ctx, query, true)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []chColumn
	for rows.Next() {
		var col chColumn
		var current uint8
		if err := rows.Scan(&current, &col.db, &col.table, &col.name, &col.typ); err != nil {
			return nil, err
		}
		col.current = current == 1
		out = append(out, col)
	}
	return out, rows.Err()
}

// describe learns the statement's result columns from sql, the statement
// with its parameters bound to placeholders; tables are the statement's
// (for its bytea columns).
func (st *chStatement) describe(ctx context.Context, c *federatedConn, sql string, tables []queryTable) error {
	bytea, err := c.byteaColumns(ctx, tables)
	if err != nil {
		return err
	}
	// The newline ends a -- comment at the end of the statement.
	rows, err := c.query(ctx, "SELECT * FROM (\n"+sql+"\n) LIMIT 0", true)
	if err != nil {
		return c.failed(ctx, err, st.params != nil && st.params.count > 0)
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
		return c.failed(ctx, err, false)
	}
	return nil
}

// ParamOIDs implements connectors.FederatedStatement.
func (st *chStatement) ParamOIDs() []uint32 { return st.oids }

// Fields implements connectors.FederatedStatement.
func (st *chStatement) Fields() []pgproto3.FieldDescription { return st.fields }

// Execute implements connectors.FederatedStatement. conn must be a
// connection to a ClickHouse peer.
func (st *chStatement) Execute(ctx context.Context, conn connectors.FederatedConn, params [][]byte,
	paramFormats, resultFormats []int16, sink connectors.RowSink) error {
	c, ok := conn.(*federatedConn)
	if !ok {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "a statement prepared for a ClickHouse peer cannot run on another kind of peer").
			WithHint("Prepare the statement again.")
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	sql := st.sql
	if len(st.oids) > 0 {
		lits := make([]string, len(st.oids))
		for i, oid := range st.oids {
			var err error
			if lits[i], err = chLiteral(c.types(), oid, formatAt(paramFormats, i), params[i]); err != nil {
				return err
			}
		}
		sql = st.params.bind(st.sql, lits)
	}
	rows, err := c.query(ctx, sql, st.readOnly)
	if err != nil {
		if errors.Is(err, io.EOF) && !st.readOnly && st.fields == nil {
			return sink.Complete("EXECUTE")
		}
		return c.failed(ctx, err, len(st.oids) > 0)
	}
	if len(rows.ColumnTypes()) == 0 && st.fields == nil {
		rows.Close()
		return sink.Complete("EXECUTE")
	}
	return c.relay(ctx, rows, st.types, resultFormats, sink, nil, false)
}

// Execute implements connectors.PeerExecutor: EXECUTE ch('...') in the
// simple protocol runs the text as it is, one statement, with the peer's
// rights; its rows if it returns any.
func (c *federatedConn) Execute(ctx context.Context, query string, pos int, sink connectors.RowSink) error {
	if err := checkCHExecute(c.peer, query, pos); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	var bytea chBytea
	if kw := firstWord(query); kw == "select" || kw == "with" {
		var err error
		if bytea, err = c.byteaColumns(ctx, tablesOf(query)); err != nil {
			return err
		}
	}
	rows, err := c.query(ctx, query, false)
	if errors.Is(err, io.EOF) {
		return sink.Complete("EXECUTE")
	}
	if err != nil {
		return c.failed(ctx, err, false)
	}
	if len(rows.ColumnTypes()) == 0 {
		rows.Close()
		return sink.Complete("EXECUTE")
	}
	return c.relay(ctx, rows, nil, nil, sink, bytea, true)
}

// PrepareExecute implements connectors.PeerExecutor. A query starting with
// SELECT or WITH is described as a federated query is; any other statement
// is expected to return no rows.
func (c *federatedConn) PrepareExecute(ctx context.Context, query string, pos int) (connectors.FederatedStatement, error) {
	if err := checkCHExecute(c.peer, query, pos); err != nil {
		return nil, err
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	st := &chStatement{sql: query}
	if w := firstWord(query); w == "select" || w == "with" {
		if err := st.describe(ctx, c, query, tablesOf(query)); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// checkCHExecute refuses an INSERT that carries its data (VALUES, FORMAT):
// over the native protocol ClickHouse expects the rows as a separate data
// block, which EXECUTE does not send, and would wait for them.
// peer is the peer's name and pos its position in the client's query.
func checkCHExecute(peer, query string, pos int) error {
	if firstWord(query) != "insert" {
		return nil
	}
	if res, err := pg_query.Scan(query); err == nil {
		for _, t := range res.GetTokens() {
			if t.GetToken() == pg_query.Token_SELECT {
				return nil
			}
		}
	}
	return sqlerr.New(pgerrcode.FeatureNotSupported, "INSERT with VALUES or FORMAT on ClickHouse peer %q is not supported", peer).
		WithPosition(pos).
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

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
