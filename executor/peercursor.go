package executor

import (
	"context"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// Cursors over a peer: DECLARE name CURSOR ... FOR a SELECT naming one
// Postgres peer (peer.schema.table) declares the cursor on the session's
// read-only connection to that peer, with the peer part removed and with
// the options as written (BINARY, SCROLL, WITH/WITHOUT HOLD); FETCH, MOVE
// and CLOSE naming it run there, and CLOSE ALL closes the catalog's
// cursors and every peer's. The SELECT is judged as any read by peer name
// (read-only, the function allow-list, the peer guard).
//
// Inside a transaction block the peer connection runs a transaction tied
// to the block, begun when the block first declares a cursor on it: COMMIT
// and ROLLBACK of the block end it the same way (a WITHOUT HOLD cursor
// closes at COMMIT, every cursor declared in the block at ROLLBACK),
// SAVEPOINT, RELEASE and ROLLBACK TO are followed, and reads by peer name
// in the block run in it; it has the block's isolation level. Outside a
// block only WITH HOLD cursors can be declared, as in Postgres. Cursor
// names are one namespace across the catalog and every peer.

// Cursor option bits of DeclareCursorStmt.options (Postgres' parsenodes.h).
const cursorOptHold = 0x20

// cursorOp is a cursor statement routed to a peer's cursor.
type cursorOp struct {
	name     string // the cursor's name ("" for CLOSE ALL)
	declare  bool
	hold     bool // DECLARE ... WITH HOLD
	close    bool // CLOSE name
	closeAll bool // CLOSE ALL: the catalog's cursors and every peer's
}

// peerCursors are a session's cursors on peers and the peer transactions
// tied to its transaction block. The zero value is ready to use.
type peerCursors struct {
	byName map[string]*peerCursor
	txs    map[string]*peerTx // by peer name, on the read-only connections
}

// peerCursor is a cursor declared on a peer.
type peerCursor struct {
	peer string
	hold bool
	// inBlock marks a cursor declared in the current transaction block, and
	// depth is how many of its peer transaction's savepoints existed then.
	inBlock bool
	depth   int
}

// peerTx is a transaction on a peer's read-only connection tied to the
// session's transaction block.
type peerTx struct {
	conn       *pgconn.PgConn
	savepoints []string // as the catalog folded them, oldest first
}

// forgetPeer forgets the cursors and transaction on peer, whose
// connections are being closed.
func (c *peerCursors) forgetPeer(peer string) {
	for name, pc := range c.byName {
		if pc.peer == peer {
			delete(c.byName, name)
		}
	}
	delete(c.txs, peer)
}

// cursorRoute routes FETCH, MOVE and CLOSE naming a peer's cursor, and
// CLOSE ALL while peers have cursors; it refuses a DECLARE of a name a
// peer's cursor has. ok is false for any other statement.
func (s *session) cursorRoute(full string, p *sqlext.Passthrough) (route, bool, error) {
	n := p.Stmt.Stmt
	op := &cursorOp{}
	switch {
	case n.GetFetchStmt() != nil:
		op.name = n.GetFetchStmt().GetPortalname()
	case n.GetClosePortalStmt() != nil:
		op.name = n.GetClosePortalStmt().GetPortalname()
		op.close, op.closeAll = op.name != "", op.name == ""
	case n.GetDeclareCursorStmt() != nil:
		name := n.GetDeclareCursorStmt().GetPortalname()
		if _, ok := s.cursors.byName[name]; ok {
			return route{}, false, errCursorExists(name)
		}
		return route{}, false, nil
	default:
		return route{}, false, nil
	}
	r := route{sql: p.Text, position: offsetPositions(full, p.Offset), cursor: op}
	if op.closeAll {
		return r, len(s.cursors.byName) > 0, nil
	}
	c, ok := s.cursors.byName[op.name]
	if !ok {
		return route{}, false, nil
	}
	r.peer = c.peer
	return r, true, nil
}

func errCursorExists(name string) error {
	return sqlerr.New(pgerrcode.DuplicateCursor, "cursor %q already exists", name)
}

// peerStatementRoute routes a forwarded write (peerwrite.go) or a DECLARE
// over a query naming target, whose references are refs.
func (s *session) peerStatementRoute(ctx context.Context, full string, p *sqlext.Passthrough, refs []peerRef,
	target catalog.Peer, at func(int) int) (route, error) {
	n := p.Stmt.Stmt
	peer := target.Name
	spans := qualifierSpans(p.Text, refs)
	r := route{
		peer:     peer,
		sql:      removeSpans(p.Text, spans),
		position: strippedPositions(full, p.Offset, p.Text, spans),
		target:   target,
		at:       at,
	}
	pos := at(refs[0].location)
	if kind := forwardedWrite(n); kind != "" {
		if target.Type != string(sqlext.PeerPostgres) {
			return route{}, errWriteClickHouse(kind, peer, pos)
		}
		if err := checkWriteNames(n, peer, kind, at); err != nil {
			return route{}, err
		}
		r.write = kind
	} else {
		d := n.GetDeclareCursorStmt()
		if target.Type != string(sqlext.PeerPostgres) {
			return route{}, sqlerr.New(pgerrcode.FeatureNotSupported,
				"cursors over ClickHouse peer %q are not supported", peer).WithPosition(pos).
				WithHint("Read the rows with a plain SELECT, with LIMIT and OFFSET or a WHERE on a key to take them in parts.")
		}
		if d.GetQuery().GetSelectStmt() == nil || writer(n) != "" {
			return route{}, sqlerr.New(pgerrcode.FeatureNotSupported,
				"a cursor over peer %q must be declared for a SELECT that only reads", peer).WithPosition(pos).
				WithHint("To run other SQL on peer %q, use EXECUTE %s('...').", peer, quoteIdent(peer))
		}
		r.cursor = &cursorOp{name: d.GetPortalname(), declare: true, hold: d.GetOptions()&cursorOptHold != 0}
	}
	r.guard = planOf(n, 0)
	if err := s.checkOwned(ctx, r.guard, at); err != nil {
		return route{}, err
	}
	return r, nil
}

// peerStatement runs a forwarded write or a statement on a peer's cursor
// in the simple protocol.
func (s *session) peerStatement(ctx context.Context, r route, w server.ResultWriter) error {
	if s.TxStatus() == 'E' {
		return errAborted()
	}
	if r.write != "" {
		return s.forwardWrite(ctx, r, w)
	}
	op := r.cursor
	if op.closeAll {
		return s.closeAllCursors(ctx, r, w)
	}
	conn, err := s.peerConn(ctx, r.peer, true)
	if err != nil {
		return err
	}
	if op.declare {
		if err := s.beforeDeclare(ctx, r, conn); err != nil {
			return err
		}
	}
	err = relayAll(conn.Exec(ctx, r.sql), w, true)
	s.afterCursor(ctx, r, err)
	return mapPosition(err, r.position)
}

// beforeDeclare checks a DECLARE on a peer before it is sent (the
// function allow-list, a catalog cursor of the same name) and begins the
// peer transaction tied to the session's block.
func (s *session) beforeDeclare(ctx context.Context, r route, conn *pgconn.PgConn) error {
	if err := s.checkCalls(ctx, r.peer, r.guard, r.at); err != nil {
		return err
	}
	cat, err := s.catalogConn(ctx)
	if err != nil {
		return err
	}
	res := cat.ExecParams(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_cursors WHERE name OPERATOR(pg_catalog.=) $1),
		pg_catalog.current_setting('transaction_isolation')`, [][]byte{[]byte(r.cursor.name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
		return fmt.Errorf("look up cursor %q: unexpected result", r.cursor.name)
	}
	if string(res.Rows[0][0]) == "t" {
		return errCursorExists(r.cursor.name)
	}
	return s.beginPeerTx(ctx, r.peer, conn, string(res.Rows[0][1]))
}

// isolationLevels are the values of transaction_isolation.
var isolationLevels = map[string]bool{
	"read uncommitted": true, "read committed": true, "repeatable read": true, "serializable": true,
}

// afterCursor records what a cursor statement that ran on a peer did.
func (s *session) afterCursor(ctx context.Context, r route, err error) {
	op := r.cursor
	switch {
	case op.declare && err == nil:
		if s.cursors.byName == nil {
			s.cursors.byName = make(map[string]*peerCursor)
		}
		c := &peerCursor{peer: r.peer, hold: op.hold, inBlock: s.TxStatus() == 'T'}
		if tx, ok := s.cursors.txs[r.peer]; ok {
			c.depth = len(tx.savepoints)
		}
		s.cursors.byName[op.name] = c
	case op.close && err == nil:
		delete(s.cursors.byName, op.name)
	case err != nil && sqlerr.From(err).Code == pgerrcode.InvalidCursorName:
		delete(s.cursors.byName, op.name) // gone with its connection
	}
	if op.declare {
		s.checkReader(ctx, r.peer)
	}
}

// beginPeerTx begins, inside a transaction block, the transaction on
// peer's read-only connection conn tied to the block, once, at the block's
// isolation level.
func (s *session) beginPeerTx(ctx context.Context, peer string, conn *pgconn.PgConn, isolation string) error {
	if s.TxStatus() != 'T' {
		return nil
	}
	if tx, ok := s.cursors.txs[peer]; ok && tx.conn == conn && conn.TxStatus() != 'I' {
		return nil
	}
	begin := "BEGIN"
	if isolationLevels[isolation] {
		begin += " ISOLATION LEVEL " + isolation
	}
	if _, err := conn.Exec(ctx, begin).ReadAll(); err != nil {
		return fmt.Errorf("begin a transaction on peer %q: %w", peer, err)
	}
	if s.cursors.txs == nil {
		s.cursors.txs = make(map[string]*peerTx)
	}
	s.cursors.txs[peer] = &peerTx{conn: conn}
	return nil
}

// closeAllCursors runs CLOSE ALL on the catalog, then on every peer
// holding cursors of the session.
func (s *session) closeAllCursors(ctx context.Context, r route, w server.ResultWriter) error {
	cat, err := s.catalogConn(ctx)
	if err != nil {
		return err
	}
	if err := relayAll(cat.Exec(ctx, r.sql), w, false); err != nil {
		return mapPosition(err, r.position)
	}
	s.closePeerCursors(ctx)
	return nil
}

// closePeerCursors closes every cursor the session has on peers.
func (s *session) closePeerCursors(ctx context.Context) {
	peers := map[string]bool{}
	for _, c := range s.cursors.byName {
		peers[c.peer] = true
	}
	for peer := range peers {
		if pc, ok := s.readers[peer]; ok && !pc.conn.IsClosed() {
			_, _ = pc.conn.Exec(ctx, "CLOSE ALL").ReadAll()
		}
	}
	s.cursors.byName = nil
}

// afterCatalog follows a statement n that ran on the catalog (err its
// outcome, before the transaction status before it) on the peer
// transactions tied to the session's block: it ends them with the block
// and follows its savepoints; DISCARD ALL closes the peers' cursors.
func (s *session) afterCatalog(ctx context.Context, n *pg_query.Node, before byte, err error) {
	if d := n.GetDiscardStmt(); d != nil && err == nil && d.GetTarget() == pg_query.DiscardMode_DISCARD_ALL {
		s.closePeerCursors(ctx)
	}
	if len(s.cursors.txs) == 0 {
		return
	}
	t := n.GetTransactionStmt()
	if s.TxStatus() == 'I' {
		commit := t != nil && t.GetKind() == pg_query.TransactionStmtKind_TRANS_STMT_COMMIT && before == 'T' && err == nil
		s.endPeerTxs(ctx, commit)
		return
	}
	if t == nil || err != nil {
		return
	}
	switch t.GetKind() {
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT, pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		// AND CHAIN: the block ended and a new one began.
		s.endPeerTxs(ctx, t.GetKind() == pg_query.TransactionStmtKind_TRANS_STMT_COMMIT && before == 'T')
	case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT, pg_query.TransactionStmtKind_TRANS_STMT_RELEASE,
		pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		s.followSavepoint(ctx, t.GetKind(), t.GetSavepointName())
	}
}

// endPeerTxs ends the peer transactions tied to the session's block, with
// COMMIT or ROLLBACK, and forgets the cursors that ended with them.
func (s *session) endPeerTxs(ctx context.Context, commit bool) {
	for peer, tx := range s.cursors.txs {
		end := "ROLLBACK"
		if commit && tx.conn.TxStatus() == 'T' {
			end = "COMMIT"
		}
		if !tx.conn.IsClosed() {
			_, _ = tx.conn.Exec(ctx, end).ReadAll()
		}
		delete(s.cursors.txs, peer)
	}
	for name, c := range s.cursors.byName {
		if commit && !c.hold || !commit && c.inBlock {
			delete(s.cursors.byName, name)
			continue
		}
		c.inBlock, c.depth = false, 0
	}
}

// followSavepoint runs SAVEPOINT, RELEASE or ROLLBACK TO, which succeeded
// on the catalog, on the peer transactions: those begun after the
// savepoint was set did all their work after it, so ROLLBACK TO rolls them
// back whole, and RELEASE leaves them be.
func (s *session) followSavepoint(ctx context.Context, kind pg_query.TransactionStmtKind, name string) {
	for peer, tx := range s.cursors.txs {
		if kind == pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT {
			if _, err := tx.conn.Exec(ctx, "SAVEPOINT "+quoteIdent(name)).ReadAll(); err == nil {
				tx.savepoints = append(tx.savepoints, name)
			}
			continue
		}
		i := len(tx.savepoints) - 1
		for i >= 0 && tx.savepoints[i] != name {
			i--
		}
		release := kind == pg_query.TransactionStmtKind_TRANS_STMT_RELEASE
		switch {
		case i < 0 && release:
		case i < 0:
			_, _ = tx.conn.Exec(ctx, "ROLLBACK").ReadAll()
			delete(s.cursors.txs, peer)
			s.dropCursors(peer, 0)
		case release:
			_, _ = tx.conn.Exec(ctx, "RELEASE SAVEPOINT "+quoteIdent(name)).ReadAll()
			tx.savepoints = tx.savepoints[:i]
			for _, c := range s.cursors.byName {
				if c.peer == peer && c.depth > i {
					c.depth = i
				}
			}
		default:
			_, _ = tx.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT "+quoteIdent(name)).ReadAll()
			tx.savepoints = tx.savepoints[:i+1]
			s.dropCursors(peer, i+1)
		}
	}
}

// dropCursors forgets peer's cursors declared in the block after its
// transaction's first depth savepoints.
func (s *session) dropCursors(peer string, depth int) {
	for name, c := range s.cursors.byName {
		if c.peer == peer && c.inBlock && c.depth >= depth {
			delete(s.cursors.byName, name)
		}
	}
}
