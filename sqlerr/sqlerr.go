// Package sqlerr is the one place that builds errors meant for a SQL client:
// an Error carries a SQLSTATE code (from github.com/jackc/pgerrcode), a
// message, and optional detail, hint, position and the other fields of a
// Postgres ErrorResponse. Every layer returns them wrapped with %w as usual;
// only the server turns them into ErrorResponse (or, for notices and
// warnings, NoticeResponse) messages.
package sqlerr

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// Error is an error with a SQLSTATE. Message is lower-case, "verb noun: cause"
// or a Postgres-style sentence; it names the offending thing. Detail and Hint
// are full sentences (capitalised, ending with a period), as Postgres writes
// them.
//
// The same type describes a notice (Severity NOTICE, WARNING, INFO, ...):
// see Notice and Warning.
type Error struct {
	Code     string // SQLSTATE, e.g. pgerrcode.SyntaxError
	Message  string
	Detail   string
	Hint     string
	Position int // 1-based character position in the query text; 0 if none
	// Severity is ERROR unless set (FATAL for errors that end the session;
	// NOTICE, WARNING, INFO, ... for notices).
	Severity string

	// Fields a Postgres server may add, relayed as they came (see From).
	Where            string // CONTEXT: the call stack, e.g. a PL/pgSQL line
	SchemaName       string
	TableName        string
	ColumnName       string
	DataTypeName     string
	ConstraintName   string
	InternalQuery    string // the text of an internally generated query that failed
	InternalPosition int    // 1-based position in InternalQuery; 0 if none
	File             string // the server's source file, line and routine (LOCATION)
	Line             int
	Routine          string

	err error
}

// New returns an Error with code and a formatted message. A %w verb in format
// wraps its argument as with fmt.Errorf.
func New(code, format string, args ...any) *Error {
	wrapped := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: wrapped.Error(), err: errors.Unwrap(wrapped)}
}

// Notice returns a notice (severity NOTICE, SQLSTATE 00000) with a formatted
// message.
func Notice(format string, args ...any) *Error {
	return &Error{Severity: "NOTICE", Code: pgerrcode.SuccessfulCompletion, Message: fmt.Sprintf(format, args...)}
}

// Warning returns a warning (severity WARNING, SQLSTATE 01000) with a
// formatted message.
func Warning(format string, args ...any) *Error {
	return &Error{Severity: "WARNING", Code: pgerrcode.Warning, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the error wrapped with %w in New's format, if any.
func (e *Error) Unwrap() error { return e.err }

// WithDetail sets Detail and returns e.
func (e *Error) WithDetail(format string, args ...any) *Error {
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

// WithHint sets Hint and returns e.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

// WithPosition sets Position and returns e.
func (e *Error) WithPosition(pos int) *Error {
	e.Position = pos
	return e
}

// From finds the most specific SQL error in err's chain: an *Error, or a
// Postgres server's *pgconn.PgError (passed on with its own code and every
// field, so a peer's errors reach the client as the peer reported them).
// Anything else becomes internal_error (XX000) with err's text; a cancelled
// statement becomes query_canceled (57014).
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		e := FromPgError(pe)
		e.err = err
		return e
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: pgerrcode.QueryCanceled, Message: "canceling statement due to user request", err: err}
	}
	return &Error{Code: pgerrcode.InternalError, Message: err.Error(), err: err}
}

// FromPgError copies every field of a Postgres server's error or notice (a
// *pgconn.Notice is a *pgconn.PgError). The result does not wrap pe.
func FromPgError(pe *pgconn.PgError) *Error {
	sev := pe.SeverityUnlocalized
	if sev == "" {
		sev = pe.Severity
	}
	return &Error{
		Code:             pe.Code,
		Message:          pe.Message,
		Detail:           pe.Detail,
		Hint:             pe.Hint,
		Position:         int(pe.Position),
		Severity:         sev,
		Where:            pe.Where,
		SchemaName:       pe.SchemaName,
		TableName:        pe.TableName,
		ColumnName:       pe.ColumnName,
		DataTypeName:     pe.DataTypeName,
		ConstraintName:   pe.ConstraintName,
		InternalQuery:    pe.InternalQuery,
		InternalPosition: int(pe.InternalPosition),
		File:             pe.File,
		Line:             int(pe.Line),
		Routine:          pe.Routine,
	}
}
