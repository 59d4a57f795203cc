package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// peerValidationTimeout bounds how long CREATE PEER waits for the peer.
const peerValidationTimeout = 20 * time.Second

// createPeer validates the options, connects to the peer to check it, and
// only then stores it: a peer that fails validation leaves nothing behind.
func (s *session) createPeer(ctx context.Context, st *sqlext.CreatePeer, w server.ResultWriter) error {
	opts := make(map[string]string, len(st.Options))
	for _, o := range st.Options {
		opts[o.Key] = o.Value.Text
	}
	kind, ok := s.ex.cfg.Kinds.Lookup(string(st.Type))
	if !ok {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "%s peers are not supported yet", st.Type).
			WithPosition(int(st.TypePos)).WithHint("Sluice supports %s peers today.", s.ex.cfg.Kinds.Types())
	}
	peer, err := kind.Parse(opts)
	if err != nil {
		return optionError(err, st.Options, st.NamePos)
	}
	if _, err := s.ex.cfg.Store.GetPeer(ctx, st.Name); err == nil {
		if st.IfNotExists {
			_ = w.Notice(sqlerr.Notice("peer %q already exists, skipping", st.Name))
			return w.Complete("CREATE PEER")
		}
		return sqlerr.New(pgerrcode.DuplicateObject, "peer %q already exists", st.Name).WithPosition(int(st.NamePos))
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	vctx, cancel := context.WithTimeout(ctx, peerValidationTimeout)
	defer cancel()
	check, err := peer.Check(vctx, st.Name)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var e *sqlerr.Error
		if errors.As(err, &e) {
			return e
		}
		ce := peerConnectError(err, "create peer %q: cannot connect", st.Name)
		if ce.Hint == "" {
			return ce.WithHint("Check host, port, user, password and database; nothing was stored.")
		}
		return ce.WithHint("%s Nothing was stored.", ce.Hint)
	}
	err = s.ex.cfg.Store.CreatePeer(ctx, catalog.Peer{Name: st.Name, Type: kind.Type, Options: peer.StoredOptions(opts)})
	if errors.Is(err, catalog.ErrExists) {
		if st.IfNotExists {
			_ = w.Notice(sqlerr.Notice("peer %q already exists, skipping", st.Name))
			return w.Complete("CREATE PEER")
		}
		return sqlerr.New(pgerrcode.DuplicateObject, "peer %q already exists", st.Name).WithPosition(int(st.NamePos))
	}
	if err != nil {
		return fmt.Errorf("create peer %q: %w", st.Name, err)
	}
	for _, n := range check.Notices {
		_ = w.Notice(n)
	}
	s.ex.cfg.Logger.InfoContext(ctx, "peer created", "peer", st.Name, "type", st.Type, "version", check.Version)
	return w.Complete("CREATE PEER")
}

// optionError turns a connector's option error into a SQL error pointing at
// the option (or at fallback when the option is missing).
func optionError(err error, opts sqlext.Options, fallback sqlext.Pos) error {
	var oe *connectors.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	pos := fallback
	if o, ok := opts.Get(oe.Key); ok {
		pos = o.Pos
	}
	code := pgerrcode.InvalidParameterValue
	if oe.Unknown {
		code = pgerrcode.SyntaxError
	}
	return sqlerr.New(code, "%s", oe.Error()).WithPosition(int(pos))
}

func (s *session) dropPeer(ctx context.Context, st *sqlext.DropPeer, w server.ResultWriter) error {
	err := s.ex.cfg.Store.DropPeer(ctx, st.Name)
	if errors.Is(err, catalog.ErrNotFound) {
		if st.IfExists {
			_ = w.Notice(sqlerr.Notice("peer %q does not exist, skipping", st.Name))
			return w.Complete("DROP PEER")
		}
		return sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", st.Name).WithPosition(int(st.NamePos))
	}
	if errors.Is(err, catalog.ErrInUse) {
		mirrors, _ := s.ex.cfg.Store.MirrorsUsingPeer(ctx, st.Name)
		return sqlerr.New(pgerrcode.DependentObjectsStillExist, "cannot drop peer %q because mirrors use it", st.Name).
			WithPosition(int(st.NamePos)).
			WithDetail("Mirrors using it: %s.", strings.Join(mirrors, ", ")).
			WithHint("Drop those mirrors first.")
	}
	if err != nil {
		return fmt.Errorf("drop peer %q: %w", st.Name, err)
	}
	s.closePeer(ctx, st.Name)
	s.ex.cfg.Logger.InfoContext(ctx, "peer dropped", "peer", st.Name)
	return w.Complete("DROP PEER")
}

// execute runs EXECUTE name('...'). It is also SQL's way to run a prepared
// statement: when no peer has that name but the session prepared a
// statement with it (PREPARE), the statement runs on the catalog as SQL, in
// a transaction block too. Otherwise it is EXECUTE peer('sql'), which acts on
// the peer and so cannot run inside a transaction block.
func (s *session) execute(ctx context.Context, st *sqlext.ExecutePeer, w server.ResultWriter) error {
	if s.TxStatus() == 'E' {
		return errAborted()
	}
	isPeer, prepared, err := s.executeTarget(ctx, st)
	if err != nil {
		return err
	}
	if prepared {
		cat, err := s.catalogConn(ctx)
		if err != nil {
			return err
		}
		err = relayAll(cat.Exec(ctx, st.Text), w, false)
		s.enforceReadOnly(ctx)
		return mapPosition(err, func(pos int) int { return int(st.TextPos()) - 1 + pos })
	}
	if !isPeer {
		return errNoPeer(st)
	}
	if err := s.checkOutsideTransaction(st); err != nil {
		return err
	}
	return s.executePeer(ctx, st, w)
}

// executeTarget tells what EXECUTE name('...') runs: the peer called name,
// or else the SQL-level prepared statement of that name on the session's
// catalog connection, or neither.
func (s *session) executeTarget(ctx context.Context, st *sqlext.ExecutePeer) (isPeer, prepared bool, err error) {
	_, err = s.ex.cfg.Store.GetPeer(ctx, st.Peer)
	if err == nil {
		return true, false, nil
	}
	if !errors.Is(err, catalog.ErrNotFound) {
		return false, false, err
	}
	if !s.sticky {
		// SQL-level PREPARE makes a session sticky (catalog_pool.go).
		return false, false, nil
	}
	cat, err := s.catalogConn(ctx)
	if err != nil {
		return false, false, err
	}
	res := cat.ExecParams(ctx, "SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE name = $1 AND from_sql",
		[][]byte{[]byte(st.Peer)}, nil, nil, nil).Read()
	return false, res.Err == nil && len(res.Rows) == 1, nil
}

// errNoPeer reports that EXECUTE names no peer (nor prepared statement).
func errNoPeer(st *sqlext.ExecutePeer) error {
	return sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", st.Peer).WithPosition(int(st.PeerPos))
}

// executePeer runs raw SQL on a peer, on the session's read-write
// connection to it, and relays every result (on a ClickHouse peer, one
// statement: see executeFederated). Positions in the peer's errors
// point into the string literal as the client wrote it.
func (s *session) executePeer(ctx context.Context, st *sqlext.ExecutePeer, w server.ResultWriter) error {
	if p, err := s.ex.cfg.Store.GetPeer(ctx, st.Peer); err == nil {
		if kind, ok := s.ex.federatedKindOf(p.Type); ok {
			return s.executeFederated(ctx, st, p, kind, w)
		}
	}
	guard, err := checkExecuteQuery(st)
	if err != nil {
		return err
	}
	if err := s.checkOwned(ctx, guard, executeAt(st)); err != nil {
		return err
	}
	conn, err := s.peerConn(ctx, st.Peer, false)
	if err != nil {
		var e *sqlerr.Error
		if errors.As(err, &e) && e.Code == pgerrcode.UndefinedObject {
			e.Position = int(st.PeerPos)
		}
		return err
	}
	defer s.forgetFunctions()
	return mapPosition(relayAll(conn.Exec(ctx, st.Query), w, true), literalPositions(st))
}

// executeAt maps a byte offset in EXECUTE's query to a position in the
// client's query string.
func executeAt(st *sqlext.ExecutePeer) func(int) int {
	lit := literalPositions(st)
	return func(loc int) int {
		if loc > len(st.Query) {
			return 0
		}
		return lit(charPos(st.Query, loc))
	}
}

// checkExecuteQuery refuses COPY in EXECUTE's query: its data would need
// the COPY sub-protocol, which Sluice's front end does not speak. It
// returns what the peer guard judges in the query (see executePlan): a
// query Sluice's parser cannot read is otherwise left for the peer to
// judge. A query too deep or too large to parse is refused (54001).
func checkExecuteQuery(st *sqlext.ExecutePeer) (*guardPlan, error) {
	res, err := sqlext.ParseTree(st.Query)
	var se *sqlext.SyntaxError
	if errors.As(err, &se) && se.Code != "" {
		e := syntaxError(se)
		if se.Pos > 0 {
			e.Position = literalPositions(st)(int(se.Pos))
		}
		return nil, e
	}
	if err != nil {
		return executePlan(st.Query, nil), nil
	}
	for _, raw := range res.GetStmts() {
		if raw.GetStmt().GetCopyStmt() != nil {
			e := errCopy()
			loc := int(raw.GetStmtLocation())
			if loc >= 0 && loc <= len(st.Query) {
				e.Position = literalPositions(st)(charPos(st.Query, loc))
			}
			return nil, e
		}
	}
	return executePlan(st.Query, res), nil
}
