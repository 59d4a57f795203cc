package connectors

import (
	"context"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Federated reads: a client of Sluice queries a peer's own tables (SELECT
// ... FROM peer.table) or runs a statement on it (EXECUTE peer('...')), and
// gets the results as Postgres types. A connector that answers such queries
// itself, in its database's dialect, implements FederatedReader; the
// executor keeps the session (transaction state, the catalog's view of the
// peer) and the wire, and hands the connector a RowSink to write to.

// RowSink receives the result of one statement, as Postgres' wire protocol
// carries it: an optional row description, rows, and a command tag. The
// executor's result writer is one. Not safe for concurrent use.
type RowSink interface {
	// Fields describes the result's columns; called at most once, before
	// any row.
	Fields(fields []pgproto3.FieldDescription) error
	// Row sends one row, a value per column in the format the client asked
	// for; a nil value is NULL. The callee does not keep values.
	Row(values [][]byte) error
	// Complete ends the result with a command tag, e.g. "SELECT 3".
	Complete(tag string) error
}

// FederatedReader is the ability to answer a client session's queries on a
// peer. Safe for concurrent use.
type FederatedReader interface {
	// OpenFederated returns a connection to the peer named peer, with the
	// peer's stored options, for one client session. It does no I/O: the
	// connection is made on first use (a bad option is reported then), and
	// made again after it failed. The caller owns the connection and
	// closes it.
	OpenFederated(peer string, options map[string]string) FederatedConn
}

// FederatedConn is one session's connection to a peer for federated reads.
// Errors are SQL errors (*sqlerr.Error) naming the peer, the context's
// error, or one wrapping the *OptionError of a bad stored option. Used by
// one goroutine at a time.
type FederatedConn interface {
	// Query runs sql, a read-only statement in the simple protocol (peer
	// qualifiers removed), and writes its description, rows and tag to
	// sink. The peer refuses writes.
	Query(ctx context.Context, sql string, sink RowSink) error
	// Prepare describes sql, a read-only statement with parameters $1, $2,
	// ..., for the extended protocol. paramOIDs are the types the client
	// declared (0 for none); the statement's ParamOIDs are the declared
	// ones, else inferred.
	Prepare(ctx context.Context, sql string, paramOIDs []uint32) (FederatedStatement, error)
	// Close releases the connection; idempotent.
	Close() error
}

// PeerExecutor is the ability to run a statement on a peer as it is, with
// the peer user's rights: EXECUTE peer('query'). pos is the position of the
// peer's name in the client's query string, which errors about the
// statement as a whole point at. A FederatedConn may have it.
type PeerExecutor interface {
	// Execute runs query in the simple protocol and writes its rows, if it
	// returns any, and its tag ("EXECUTE" when it returns none) to sink.
	Execute(ctx context.Context, query string, pos int, sink RowSink) error
	// PrepareExecute describes query for the extended protocol.
	PrepareExecute(ctx context.Context, query string, pos int) (FederatedStatement, error)
}

// FederatedStatement is a statement prepared by a FederatedConn or a
// PeerExecutor. It holds no resource on the peer; it may be run on any
// connection to a peer of the same type, e.g. one opened anew after the
// peer was re-created. Used by one goroutine at a time.
type FederatedStatement interface {
	// ParamOIDs are the parameters' Postgres types.
	ParamOIDs() []uint32
	// Fields describes the result's columns (nil for a statement that
	// returns no rows).
	Fields() []pgproto3.FieldDescription
	// Execute runs the statement on conn with params (one per ParamOIDs,
	// nil for NULL) in paramFormats, and writes its rows in resultFormats
	// and its tag to sink; it sends no row description. The caller has
	// checked the number of parameters.
	Execute(ctx context.Context, conn FederatedConn, params [][]byte, paramFormats, resultFormats []int16,
		sink RowSink) error
}
