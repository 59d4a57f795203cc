package postgres

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// ConnectError is a failed connection to a peer, leading with the real
// cause. With sslmode=prefer pgconn tries TLS first and then plain text and
// joins both attempts' errors in order, so a server without TLS that refuses
// the password reads "tls error: server refused TLS connection" first. Here
// the cause is the error the server sent (a *pgconn.PgError: 28P01, 3D000,
// ...) when an attempt got that far, else the last attempt's error; the
// other attempts are kept apart for a DETAIL.
type ConnectError struct {
	Addr     string   // host:port
	Cause    error    // the leading error
	Attempts []string // the other attempts' errors, in order
	err      error    // pgconn's error, unwrapped by Unwrap
}

// Error implements error: "connect to ADDR: CAUSE", the server's message
// without pgconn's prefixes when the server sent one.
func (e *ConnectError) Error() string {
	return "connect to " + e.Addr + ": " + causeText(e.Cause)
}

var _ connectors.ConnectFailure = (*ConnectError)(nil)

// ServerCode implements connectors.ConnectFailure: the SQLSTATE of the
// server's error that leads, or "".
func (e *ConnectError) ServerCode() string {
	var pe *pgconn.PgError
	if errors.As(e.Cause, &pe) {
		return pe.Code
	}
	return ""
}

// OtherAttempts implements connectors.ConnectFailure.
func (e *ConnectError) OtherAttempts() []string { return e.Attempts }

// Unwrap returns pgconn's error, so that errors.As finds the
// *pgconn.PgError of the cause.
func (e *ConnectError) Unwrap() error { return e.err }

// causeText is err's message: a server error's own message, else err's text.
func causeText(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

// connectFailed turns pgconn's error connecting to addr into a
// *ConnectError. A context error is returned as it is.
func connectFailed(addr string, err error) error {
	attempts := []error{err}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		inner := errors.Unwrap(ce)
		if j, ok := inner.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
			attempts = j.Unwrap()
		} else if inner != nil {
			attempts = []error{inner}
		}
	}
	lead := len(attempts) - 1
	for i, a := range attempts {
		var pe *pgconn.PgError
		if errors.As(a, &pe) {
			lead = i
			break
		}
	}
	out := &ConnectError{Addr: addr, Cause: withoutAddr(attempts[lead]), err: err}
	for i, a := range attempts {
		if text := strings.TrimSpace(withoutAddr(a).Error()); i != lead && text != out.Cause.Error() {
			out.Attempts = append(out.Attempts, text)
		}
	}
	return out
}

// withoutAddr drops pgconn's "host:port (host): " before one attempt's
// error: the address leads the whole message already.
func withoutAddr(err error) error {
	if inner := errors.Unwrap(err); inner != nil && strings.HasSuffix(err.Error(), "): "+inner.Error()) {
		return inner
	}
	return err
}

// ConnectFailed is connectFailed for connections opened outside this
// package with a config from ConnConfig.
func ConnectFailed(cfg *pgconn.Config, err error) error {
	return connectFailed(fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), err)
}
