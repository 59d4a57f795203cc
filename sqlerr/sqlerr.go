// Package sqlerr is the one place that builds errors meant for a SQL client:
// an Error carries a SQLSTATE code (from github.com/jackc/pgerrcode), a
// message, and optional detail, hint and position. Every layer returns them
// wrapped with %w as usual; only the server turns them into ErrorResponse
// messages.
package sqlerr

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// Error is an error with a SQLSTATE. Message is lower-case, "verb noun: cause"
// or a Postgres-style sentence; it names the offending thing.
type Error struct {
	Code     string // SQLSTATE, e.g. pgerrcode.SyntaxError
	Message  string
	Detail   string
	Hint     string
	Position int // 1-based character position in the query text; 0 if none
	// Severity is ERROR unless set (FATAL for errors that end the session).
	Severity string
	err      error
}

// New returns an Error with code and a formatted message. A %w verb in format
// wraps its argument as with fmt.Errorf.
func New(code, format string, args ...any) *Error {
	wrapped := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: wrapped.Error(), err: errors.Unwrap(wrapped)}
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
// Postgres server's *pgconn.PgError (passed on with its own code, so a peer's
// errors reach the client as the peer reported them). Anything else becomes
// internal_error (XX000) with err's text; a cancelled statement becomes
// query_canceled (57014).
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &Error{Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint,
			Position: int(pe.Position), Severity: pe.Severity, err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: pgerrcode.QueryCanceled, Message: "canceling statement due to user request", err: err}
	}
	return &Error{Code: pgerrcode.InternalError, Message: err.Error(), err: err}
}

