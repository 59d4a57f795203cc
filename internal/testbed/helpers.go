package testbed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Helpers the test packages that drive Sluice over the wire share.

// statementTimeout bounds one statement of a test helper.
const statementTimeout = 3 * time.Minute

// statementCtx is a context for one statement of t.
func statementCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), statementTimeout)
	t.Cleanup(cancel)
	return ctx
}

// Connect connects to url for t, closed when t ends.
func Connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(statementCtx(t), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// MustExec runs sql on conn and fails t on error.
func MustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(statementCtx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// WantError checks that err is a server error with SQLSTATE code, and
// returns it.
func WantError(t *testing.T, err error, code string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want SQLSTATE %s, got %v", code, err)
	}
	if pe.Code != code {
		t.Fatalf("want SQLSTATE %s, got %s: %s", code, pe.Code, pe.Message)
	}
	return pe
}
