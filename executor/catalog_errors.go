package executor

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// readerRole matches the name of the catalog's internal reader role
// (sluice_reader_ and hex digits, see catalog.Store.ReaderIsolated), which
// clients never see: they log in as Sluice's own user.
var readerRole = regexp.MustCompile(`sluice_reader_[0-9a-f]+`)

// hiddenRole stands in for the reader role's name in messages.
const hiddenRole = "(the session's catalog role)"

// catalogConnectError is the client's error for a session that could not
// connect to the catalog: 53300 when the catalog's server has no connection
// slot free, otherwise 08004 with the cause; neither names the reader role
// nor repeats pgconn's "failed to connect to `user=...`" prefix.
func catalogConnectError(err error) *sqlerr.Error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == pgerrcode.TooManyConnections {
		return sqlerr.New(pgerrcode.TooManyConnections, "sorry, too many clients already").
			WithDetail("The catalog database has no connection free for this session: %s.", hideRoles(pe.Message)).
			WithHint("Lower Sluice's --catalog-pool-size, or raise max_connections on the catalog's server.")
	}
	cause := err
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if inner := errors.Unwrap(ce); inner != nil {
			cause = inner
		}
	}
	msg := cause.Error()
	if pe != nil {
		msg = pe.Message
	}
	return sqlerr.New(pgerrcode.SQLServerRejectedEstablishmentOfSQLConnection, "connect to catalog: %s", hideRoles(msg))
}

// hideRoles replaces every reader role name in s.
func hideRoles(s string) string {
	return readerRole.ReplaceAllString(s, hiddenRole)
}

// withoutRoles returns err, or a copy of its SQL error with the reader
// role's name replaced in every text field that names it.
func withoutRoles(err error) error {
	if err == nil {
		return nil
	}
	e := sqlerr.From(err)
	if !readerRole.MatchString(e.Message + e.Detail + e.Hint + e.Where + e.InternalQuery) {
		return err
	}
	cp := *e
	cp.Message, cp.Detail, cp.Hint = hideRoles(e.Message), hideRoles(e.Detail), hideRoles(e.Hint)
	cp.Where, cp.InternalQuery = hideRoles(e.Where), hideRoles(e.InternalQuery)
	return &cp
}

// forClient is a statement's error as the client gets it: without the
// reader role's name (withoutRoles), and never FATAL or PANIC. A backend's
// FATAL (its connection ended, say a catalog connection whose backend was
// terminated) ends that connection, which Sluice discards, not the client's
// session: relayed as FATAL it would make the client drop a session that
// still works.
func forClient(err error) error {
	err = withoutRoles(err)
	if err == nil {
		return nil
	}
	e := sqlerr.From(err)
	if e.Severity != "FATAL" && e.Severity != "PANIC" {
		return err
	}
	cp := *e
	cp.Severity = "ERROR"
	return &cp
}

// peerConnectError is the client's error for a peer that could not be
// reached: prefix (which names the peer), then the real cause. A server's
// refusal (connectors.ConnectFailure) keeps its SQLSTATE (28P01 for a wrong password, 3D000 for a
// missing database, ...); anything else is 08001. The other connection
// attempts (pgconn tries TLS, then plain text) follow in the DETAIL. A
// connector's error that says what to do (connectors.Hinter: a ClickHouse
// peer pointed at its HTTP port) gives the HINT.
func peerConnectError(err error, prefix string, args ...any) *sqlerr.Error {
	msg := fmt.Sprintf(prefix, args...)
	var ce connectors.ConnectFailure
	if !errors.As(err, &ce) {
		e := sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection, "%s: %v", msg, err)
		if h := connectors.HintOf(err); h != "" {
			e = e.WithHint("%s", h)
		}
		return e
	}
	code := pgerrcode.SQLClientUnableToEstablishSQLConnection
	if c := ce.ServerCode(); c != "" {
		code = c
	}
	e := sqlerr.New(code, "%s: %s", msg, ce.Error())
	if attempts := ce.OtherAttempts(); len(attempts) > 0 {
		e = e.WithDetail("Other connection attempts: %s.", strings.Join(attempts, "; "))
	}
	return e
}
