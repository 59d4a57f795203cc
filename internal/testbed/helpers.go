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

// Password is the password the tests give the Sluice servers they start
// (StartSluice's Options.Password, StartSluiceProcess's password).
const Password = "s3cret-pw"

// statementTimeout bounds one statement or wait of a test helper.
const statementTimeout = 3 * time.Minute

// Ctx is a context for one statement or wait of t (three minutes at
// most), cancelled when t ends.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), statementTimeout)
	t.Cleanup(cancel)
	return ctx
}

// Connect connects to url for t, closed when t ends.
func Connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(Ctx(t), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// MustExec runs sql on conn and fails t on error.
func MustExec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(Ctx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// WantError checks that err is a server error with SQLSTATE code, and
// returns it.
func WantError(t testing.TB, err error, code string) *pgconn.PgError {
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
