package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// Queries on ClickHouse peers: SELECT ... FROM ch.table (or ch.db.table) and
// EXECUTE ch('...'). The text, peer qualifiers removed, goes to ClickHouse
// over the native protocol; the results come back as Postgres types
// (federated_types.go), String columns mirrored from bytea as bytea
// (federated_bytea.go), and parameters are bound into the text
// (federated_params.go). Federated queries run with the setting
// readonly = 2, so the server refuses any write; EXECUTE runs as it is.
// Prepared statements are in federated_stmt.go.

// FederatedReader answers federated queries and EXECUTE on ClickHouse
// peers. The zero value is ready; safe for concurrent use.
type FederatedReader struct{}

var (
	_ connectors.FederatedReader = FederatedReader{}
	_ connectors.FederatedConn   = (*federatedConn)(nil)
	_ connectors.PeerExecutor    = (*federatedConn)(nil)
)

// OpenFederated implements connectors.FederatedReader.
func (FederatedReader) OpenFederated(peer string, options map[string]string) connectors.FederatedConn {
	return &federatedConn{peer: peer, options: options}
}

// federatedConn is a session's connection to a ClickHouse peer.
type federatedConn struct {
	peer    string
	options map[string]string
	conn    driver.Conn // nil until connected, and after the connection failed
	// readOnly: the peer's user is read-only on the server already (a
	// readonly profile), which then refuses to have the setting changed.
	readOnly bool
	typeMap  *pgtype.Map // for binary values of results; made on first use
}

// connect connects to the peer unless connected.
func (c *federatedConn) connect(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	cfg, err := ParsePeerOptions(c.options)
	if err != nil {
		return fmt.Errorf("peer %q: %w", c.peer, err)
	}
	conn, err := cfg.Open(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e := sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection, "peer %q: %v", c.peer, err)
		if h := connectors.HintOf(err); h != "" {
			e = e.WithHint("%s", h) // ErrHTTPPort's
		}
		return e
	}
	var ro string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'readonly'").Scan(&ro); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection, "connect to peer %q: %v", c.peer, err)
	}
	c.conn, c.readOnly = conn, ro != "0"
	return nil
}

// Close implements connectors.FederatedConn.
func (c *federatedConn) Close() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// query runs sql. readOnly runs it with readonly = 2 (reads and settings
// only) unless the user is read-only already. A statement that returns no
// result at all (DDL) is io.EOF.
func (c *federatedConn) query(ctx context.Context, sql string, readOnly bool) (driver.Rows, error) {
	if readOnly && !c.readOnly {
		ctx = chgo.Context(ctx, chgo.WithSettings(chgo.Settings{"readonly": 2}))
	}
	return c.conn.Query(ctx, sql)
}

// types returns the connection's pgtype map.
func (c *federatedConn) types() *pgtype.Map {
	if c.typeMap == nil {
		c.typeMap = pgtype.NewMap()
	}
	return c.typeMap
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

// failed turns an error of a query on the peer into a SQL error: the
// server's exceptions keep their message, prefixed with the peer, and get
// a fitting SQLSTATE; anything else (the connection failed) also closes the
// connection, so that the next query opens a new one. withParams adds a
// hint to type errors of a statement with parameters.
func (c *federatedConn) failed(ctx context.Context, err error, withParams bool) error {
	var ex *chgo.Exception
	if errors.As(err, &ex) {
		code, ok := chSQLStates[ex.Code]
		if !ok {
			code = pgerrcode.FDWError
		}
		e := sqlerr.New(code, "clickhouse peer %q: %s", c.peer, strings.TrimSpace(ex.Message)).
			WithDetail("ClickHouse error code %d.", ex.Code)
		if withParams && code == pgerrcode.DatatypeMismatch {
			e = e.WithHint("A parameter not compared directly with a column is sent as a string; " +
				"write CAST($1 AS Int64) (or the type it stands for).")
		}
		return e
	}
	_ = c.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return sqlerr.New(pgerrcode.ConnectionFailure, "clickhouse peer %q: connection lost: %v", c.peer, err)
	}
	var se *sqlerr.Error
	if errors.As(err, &se) {
		return se
	}
	return sqlerr.New(pgerrcode.FDWError, "clickhouse peer %q: %v", c.peer, err)
}

// Query implements connectors.FederatedConn.
func (c *federatedConn) Query(ctx context.Context, sql string, sink connectors.RowSink) error {
	if err := c.connect(ctx); err != nil {
		return err
	}
	bytea, err := c.byteaColumns(ctx, tablesOf(sql))
	if err != nil {
		return err
	}
	rows, err := c.query(ctx, sql, true)
	if err != nil {
		return c.failed(ctx, err, false)
	}
	return c.relay(ctx, rows, nil, nil, sink, bytea, true)
}

// relay copies rows to sink and closes them. want are the column types the
// statement was described with (nil: none, the simple protocol); describe
// sends the columns first, those in bytea as bytea. formats are the
// client's result formats.
func (c *federatedConn) relay(ctx context.Context, rows driver.Rows, want []chType, formats []int16,
	sink connectors.RowSink, bytea chBytea, describe bool) error {
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
		if err := sink.Fields(chFields(rows.Columns(), types)); err != nil {
			return err
		}
	}
	dest := make([]any, len(cts))
	for i, ct := range cts {
		dest[i] = reflect.New(ct.ScanType()).Interface()
	}
	rw := chRowWriter{m: c.types(), types: types, formats: formats, peer: c.peer, names: rows.Columns()}
	n := 0
	for rows.Next() {
		// clickhouse-go leaves some destinations as they were for a NULL
		// (Nullable(Decimal), ...): start every row from zero values.
		for _, d := range dest {
			e := reflect.ValueOf(d).Elem()
			e.Set(reflect.Zero(e.Type()))
		}
		if err := rows.Scan(dest...); err != nil {
			return c.failed(ctx, err, false)
		}
		values, err := rw.row(dest)
		if err != nil {
			return err
		}
		if err := sink.Row(values); err != nil {
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return c.failed(ctx, err, false)
	}
	return sink.Complete(fmt.Sprintf("SELECT %d", n))
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
