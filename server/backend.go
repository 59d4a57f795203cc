package server

import (
	"context"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/sqlerr"
)

// Backend is what the server needs from the layer that runs statements.
// Implementations must be safe for concurrent use: every connection calls Open.
type Backend interface {
	// Open starts a session for an authenticated client. The session is
	// closed by the server when the connection ends.
	Open(ctx context.Context, info SessionInfo) (Session, error)
}

// SessionInfo describes the client of a session.
type SessionInfo struct {
	User            string
	Database        string
	ApplicationName string
	RemoteAddr      string
	// Params are all start-up parameters the client sent.
	Params map[string]string
}

// Session runs the statements of one client connection. It is used by one
// goroutine at a time (the connection's), except that the ctx given to its
// methods may be cancelled from another goroutine by a CancelRequest.
type Session interface {
	// Query runs every statement of a simple-protocol query string in order,
	// writing each one's results to w, and stops at the first error, which it
	// returns. A string with no statement calls w.EmptyQuery.
	Query(ctx context.Context, sql string, w ResultWriter) error
	// Prepare parses and prepares one statement for the extended protocol.
	// paramOIDs are the types the client declared (0 = unspecified).
	Prepare(ctx context.Context, sql string, paramOIDs []uint32) (Statement, error)
	// TxStatus returns the transaction status for ReadyForQuery: 'I' idle,
	// 'T' in a transaction block, 'E' in a failed transaction block.
	TxStatus() byte
	// ParameterChanges returns run-time parameters whose values changed since
	// the last call (e.g. after SET DateStyle), to send as ParameterStatus.
	// The first call returns all of them (server_version, DateStyle, ...).
	ParameterChanges() map[string]string
	// Close releases the session's resources. It is called exactly once.
	Close(ctx context.Context)
}

// Statement is a prepared statement of the extended protocol.
type Statement interface {
	// ParamOIDs are the parameter types, resolved where the target knows them.
	ParamOIDs() []uint32
	// Fields describes the result columns (all in text format); nil when the
	// statement returns no rows.
	Fields() []pgproto3.FieldDescription
	// Execute runs the statement with bound parameters and writes its rows and
	// completion to w (Fields is not called: the server describes portals from
	// Fields()). resultFormats follow the protocol: none means all text, one
	// applies to all columns.
	Execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16, w ResultWriter) error
	// Close releases the statement. It is called at most once.
	Close(ctx context.Context) error
}

// ResultWriter receives results. Implementations are provided by the server;
// byte slices passed in are only valid during the call.
type ResultWriter interface {
	// Fields starts a result set (RowDescription).
	Fields(fields []pgproto3.FieldDescription) error
	// Row sends one row (DataRow); a nil value is NULL.
	Row(values [][]byte) error
	// Complete ends one statement's result (CommandComplete), e.g. "SELECT 3".
	Complete(tag string) error
	// EmptyQuery reports a query string with no statement.
	EmptyQuery() error
	// Notice sends a NoticeResponse with every field of n: its severity
	// (NOTICE when empty; WARNING, INFO, ...), SQLSTATE (00000 for a notice
	// and 01000 for a warning when empty), message, detail, hint and the
	// rest. Notices go to the client at once, even while rows are being
	// buffered for a portal.
	Notice(n *sqlerr.Error) error
}
