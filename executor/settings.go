package executor

import (
	"context"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/sqlerr"
)

// A session's settings (SET TimeZone, DateStyle, ...) apply to what peers
// return too: each session-level SET, RESET, RESET ALL or DISCARD ALL that
// succeeds on the catalog is replayed on every open peer connection of the
// session, and remembered, in order, for peer connections opened later. SET
// LOCAL and SET TRANSACTION last one transaction and are not replayed.
// Inside a transaction block, settings wait for COMMIT (a ROLLBACK undoes
// them on the catalog, and so drops them here); a ROLLBACK TO SAVEPOINT is
// not followed. A peer that lacks a setting (an extension's, say) reports an
// error, which is ignored. Settings that guard read-only mode or the role
// never get this far: they are refused (readonly.go).

// setting is a session-level SET or RESET that succeeded on the catalog.
type setting struct {
	name  string // the setting, lower case; "" for several (SET SESSION CHARACTERISTICS) or all
	sql   string // the statement to replay
	reset bool   // a RESET (or SET ... TO DEFAULT): no need to replay it on a new connection
	all   bool   // RESET ALL or DISCARD ALL
}

// settingOf returns the setting statement n (whose text is text) makes, if
// it is one to replay.
func settingOf(n *pg_query.Node, text string) (setting, bool) {
	if v := n.GetVariableSetStmt(); v != nil {
		if v.GetIsLocal() {
			return setting{}, false
		}
		switch v.GetKind() {
		case pg_query.VariableSetKind_VAR_SET_MULTI:
			if !strings.EqualFold(v.GetName(), "SESSION CHARACTERISTICS") {
				return setting{}, false // SET TRANSACTION
			}
			return setting{sql: text}, true
		case pg_query.VariableSetKind_VAR_RESET_ALL:
			return setting{sql: "RESET ALL", reset: true, all: true}, true
		case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_SET_DEFAULT:
			return setting{name: strings.ToLower(v.GetName()), sql: text, reset: true}, true
		}
		return setting{name: strings.ToLower(v.GetName()), sql: text}, true
	}
	if d := n.GetDiscardStmt(); d != nil && d.GetTarget() == pg_query.DiscardMode_DISCARD_ALL {
		// On a peer only the settings part: its prepared statements are
		// Sluice's, not the client's.
		return setting{sql: "RESET ALL", reset: true, all: true}, true
	}
	return setting{}, false
}

// trackSettings follows a statement n (text) that ran on the catalog, with
// err its outcome and before the transaction status before it ran.
func (s *session) trackSettings(ctx context.Context, n *pg_query.Node, text string, before byte, err error) {
	now := s.TxStatus()
	if set, ok := settingOf(n, text); ok && err == nil {
		if before == 'I' && now == 'I' {
			s.applySetting(ctx, set)
		} else {
			s.pending = append(s.pending, set)
		}
		return
	}
	if t := n.GetTransactionStmt(); t != nil {
		switch t.GetKind() {
		case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
			if err == nil && before == 'T' {
				pending := s.pending
				s.pending = nil
				for _, set := range pending {
					s.applySetting(ctx, set)
				}
				return
			}
		case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
			s.pending = nil
		}
	}
	if now == 'I' {
		s.pending = nil
	}
}

// applySetting replays set on the open peer connections and remembers it
// for new ones.
func (s *session) applySetting(ctx context.Context, set setting) {
	switch {
	case set.all:
		s.settings = nil
	case set.name != "":
		kept := s.settings[:0]
		for _, old := range s.settings {
			if old.name != set.name {
				kept = append(kept, old)
			}
		}
		s.settings = kept
	}
	if !set.reset {
		s.settings = append(s.settings, set)
	}
	// The held catalog connection ran it: it still has the session's
	// settings.
	s.setVersion++
	if s.held != nil {
		s.held.owner, s.held.version = s.id, s.setVersion
	}
	s.restoreForwarded(ctx, set)
	for _, m := range []map[string]*peerConn{s.peers, s.readers} {
		for _, pc := range m {
			s.replay(ctx, pc.conn, []setting{set})
		}
	}
}

// replay runs settings on a peer connection, ignoring errors and notices.
func (s *session) replay(ctx context.Context, conn *pgconn.PgConn, settings []setting) {
	if len(settings) == 0 || conn.IsClosed() {
		return
	}
	saved := s.notices
	s.notices = nil
	defer func() { s.notices = saved }()
	for _, set := range settings {
		_, _ = conn.Exec(ctx, set.sql).ReadAll()
	}
}

// adopt makes a borrowed catalog connection the session's: unless it has
// the session's settings already, it is reset (DISCARD ALL, when another
// session used it) and given the client's start-up parameters and the
// session's settings, in one round trip (a pipeline, each statement its
// own transaction, so one setting that fails now does not undo the others).
func (s *session) adopt(ctx context.Context, cc *catConn) error {
	if cc.owner == s.id && cc.version == s.setVersion {
		return nil
	}
	type stmt struct {
		sql    string
		params [][]byte
	}
	var stmts []stmt
	if cc.used {
		stmts = append(stmts, stmt{sql: "DISCARD ALL"})
		cc.gen++
	}
	for _, kv := range s.forwardedSets() {
		stmts = append(stmts, stmt{sql: "SELECT pg_catalog.set_config($1, $2, false)", params: kv})
	}
	for _, set := range s.settings {
		stmts = append(stmts, stmt{sql: set.sql})
	}
	cc.owner, cc.version = 0, 0
	if len(stmts) > 0 {
		pl := cc.conn.StartPipeline(ctx)
		for _, st := range stmts {
			pl.SendQueryParams(st.sql, st.params, nil, nil, nil)
			if err := pl.Sync(); err != nil {
				break
			}
		}
		_ = pl.Close() // a setting's error is ignored, as on peers
		if cc.conn.IsClosed() {
			return sqlerr.New(pgerrcode.ConnectionFailure, "catalog connection lost while preparing it for the session")
		}
	}
	cc.owner, cc.version = s.id, s.setVersion
	return nil
}

// forwardedSets returns the client's start-up parameters that catalog
// connections take (forwardedParams), as set_config arguments.
func (s *session) forwardedSets() [][][]byte {
	params := make(map[string]string)
	s.forwardParams(params)
	var sets [][][]byte
	for _, k := range forwardedParams {
		if v, ok := params[k]; ok {
			sets = append(sets, [][]byte{[]byte(k), []byte(v)})
		}
	}
	return sets
}

// restoreForwarded gives the catalog connection the client's start-up
// parameters again after a RESET that may have reset them (on a pooled
// connection they are not start-up parameters, so RESET would drop them).
func (s *session) restoreForwarded(ctx context.Context, set setting) {
	if s.cat == nil || !set.reset {
		return
	}
	saved := s.notices
	s.notices = nil
	defer func() { s.notices = saved }()
	for _, kv := range s.forwardedSets() {
		if set.all || strings.EqualFold(set.name, string(kv[0])) {
			_, _ = s.cat.ExecParams(ctx, "SELECT pg_catalog.set_config($1, $2, false)", kv, nil, nil, nil).Close()
		}
	}
}

// trackPins follows a statement n that ran on the catalog connection (err
// its outcome) for state that pins the connection to the session: a
// SQL-level PREPARE, a cursor WITH HOLD, LISTEN. DISCARD ALL drops all of it,
// and DISCARD ALL and DEALLOCATE ALL drop the statements the session
// prepared through the extended protocol too.
func (s *session) trackPins(n *pg_query.Node, err error) {
	if err != nil || s.held == nil {
		return
	}
	switch {
	case n.GetPrepareStmt() != nil, n.GetListenStmt() != nil:
		s.sticky = true
	case n.GetDeclareCursorStmt() != nil:
		if n.GetDeclareCursorStmt().GetOptions()&cursorOptHold != 0 {
			s.sticky = true
		}
	case n.GetDiscardStmt() != nil && n.GetDiscardStmt().GetTarget() == pg_query.DiscardMode_DISCARD_ALL:
		s.sticky = false
		s.held.gen++
	case n.GetDeallocateStmt() != nil && n.GetDeallocateStmt().GetIsall():
		s.held.gen++
	}
}
