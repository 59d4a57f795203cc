package executor

import (
	"context"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// Prepare implements server.Session for the extended protocol. Standard SQL
// is prepared on the backend it routes to (catalog or peer), so parameter and
// result types are the backend's own; Sluice's statements take no parameters.
// An error inside a transaction block aborts it, as in Postgres.
func (s *session) Prepare(ctx context.Context, sql string, paramOIDs []uint32) (server.Statement, error) {
	st, err := s.prepare(ctx, sql, paramOIDs)
	if err != nil {
		s.abortBlock(ctx)
	}
	s.releaseCatalog(ctx)
	return st, forClient(err)
}

func (s *session) prepare(ctx context.Context, sql string, paramOIDs []uint32) (server.Statement, error) {
	stmts, err := parse(ctx, sql)
	if err != nil {
		return nil, err
	}
	switch len(stmts) {
	case 0:
		return emptyStatement{}, nil
	case 1:
	default:
		return nil, sqlerr.New(pgerrcode.SyntaxError, "cannot insert multiple commands into a prepared statement")
	}
	switch st := stmts[0].(type) {
	case *sqlext.Passthrough:
		r, err := s.routeOf(ctx, sql, st)
		if err != nil {
			return nil, err
		}
		if r.write != "" || r.cursor != nil {
			return s.preparePeerStatement(ctx, r, paramOIDs)
		}
		if r.peer != "" && s.TxStatus() == 'E' {
			return nil, errAborted()
		}
		if kind, ok := s.ex.federatedKindOf(r.target.Type); ok {
			return s.prepareFederated(ctx, r, kind, paramOIDs)
		}
		var conn *pgconn.PgConn
		if r.peer == "" {
			conn, err = s.catalogConn(ctx)
		} else {
			conn, err = s.peerConn(ctx, r.peer, true)
		}
		if err != nil {
			return nil, err
		}
		if r.peer != "" {
			if err := s.checkCalls(ctx, r.peer, r.guard, r.at); err != nil {
				return nil, err
			}
		}
		bs, err := s.prepareOn(ctx, conn, r.sql, paramOIDs, r.peer != "", r.position)
		if err != nil {
			return nil, err
		}
		if r.peer == "" {
			bs.catalogStmt = st
		} else {
			bs.peer, bs.readOnly = r.peer, true
		}
		bs.guard = func(ctx context.Context) error {
			if err := s.checkOwned(ctx, r.guard, r.at); err != nil || r.peer == "" {
				return err
			}
			return s.checkCalls(ctx, r.peer, r.guard, r.at)
		}
		return bs, nil
	case *sqlext.ExecutePeer:
		isPeer, prepared, err := s.executeTarget(ctx, st)
		if err != nil {
			return nil, err
		}
		if prepared {
			cat, err := s.catalogConn(ctx)
			if err != nil {
				return nil, err
			}
			return s.prepareOn(ctx, cat, st.Text, paramOIDs, false,
				func(pos int) int { return int(st.TextPos()) - 1 + pos })
		}
		if !isPeer {
			return nil, errNoPeer(st)
		}
		if err := s.checkOutsideTransaction(st); err != nil {
			return nil, err
		}
		if p, err := s.ex.cfg.Store.GetPeer(ctx, st.Peer); err == nil {
			if kind, ok := s.ex.federatedKindOf(p.Type); ok {
				return s.prepareExecuteFederated(ctx, st, p, kind)
			}
		}
		guard, err := checkExecuteQuery(st)
		if err != nil {
			return nil, err
		}
		if err := s.checkOwned(ctx, guard, executeAt(st)); err != nil {
			return nil, err
		}
		conn, err := s.peerConn(ctx, st.Peer, false)
		if err != nil {
			return nil, err
		}
		bs, err := s.prepareOn(ctx, conn, st.Query, nil, true, literalPositions(st))
		if err != nil {
			return nil, err
		}
		bs.peer = st.Peer
		bs.guard = func(ctx context.Context) error { return s.checkOwned(ctx, guard, executeAt(st)) }
		bs.viaExecute = true
		return bs, nil
	default:
		return &verbStatement{s: s, st: st, sql: sql}, nil
	}
}

func (s *session) prepareOn(ctx context.Context, conn *pgconn.PgConn, sql string, paramOIDs []uint32,
	fromPeer bool, position func(int) int) (*backendStatement, error) {
	name := s.nextName()
	sd, err := conn.Prepare(ctx, name, sql, paramOIDs)
	if err != nil {
		return nil, mapPosition(err, position)
	}
	ps := &backendStatement{s: s, conn: conn, sd: sd, sql: sql, paramOIDs: paramOIDs, fromPeer: fromPeer, position: position}
	if conn == s.cat {
		ps.cat, ps.gen = s.held, s.held.gen
	}
	if len(sd.Fields) > 0 {
		ps.fields = fieldsOf(sd.Fields, fromPeer)
	}
	return ps, nil
}

// backendStatement is a statement prepared on the catalog or a peer.
type backendStatement struct {
	s    *session
	conn *pgconn.PgConn
	// cat is the pooled catalog connection the statement was prepared on
	// (nil on a peer), while its gen was gen: the statement is there only
	// while the session holds cat and cat.gen is unchanged.
	cat      *catConn
	gen      uint64
	sd       *pgconn.StatementDescription
	fields   []pgproto3.FieldDescription
	fromPeer bool
	position func(int) int
	// What was prepared, to prepare it again on a new connection.
	sql       string
	paramOIDs []uint32
	// catalogStmt is the statement prepared on the catalog (nil on a peer),
	// for the session to follow settings and transactions.
	catalogStmt *sqlext.Passthrough
	// peer names the peer the statement runs on ("" for the catalog), on
	// its read-only connection for a federated query.
	peer     string
	readOnly bool
	// guard runs the peer guard (peerguard.go) again before each execution:
	// mirrors, the connection or the peer's functions may have changed
	// since the statement was prepared. nil for none.
	guard func(ctx context.Context) error
	// viaExecute marks EXECUTE peer('...'), which may create functions.
	viaExecute bool
}

// ParamOIDs are the backend's parameter types; a peer's own types (see
// fieldsOf) are described as text.
func (b *backendStatement) ParamOIDs() []uint32 {
	if !b.fromPeer {
		return b.sd.ParamOIDs
	}
	oids := make([]uint32, len(b.sd.ParamOIDs))
	for i, oid := range b.sd.ParamOIDs {
		if oid >= firstUserOID {
			oid = textOID
		}
		oids[i] = oid
	}
	return oids
}

func (b *backendStatement) Fields() []pgproto3.FieldDescription { return b.fields }

func (b *backendStatement) Execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16, w server.ResultWriter) error {
	err := b.execute(ctx, params, paramFormats, resultFormats, w)
	if err != nil {
		b.s.abortBlock(ctx)
	}
	b.s.releaseCatalog(ctx)
	return forClient(err)
}

func (b *backendStatement) execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16, w server.ResultWriter) error {
	if b.fromPeer && b.s.TxStatus() == 'E' {
		return errAborted()
	}
	if err := b.reprepare(ctx); err != nil {
		return err
	}
	if b.guard != nil {
		if err := b.guard(ctx); err != nil {
			return err
		}
	}
	if b.viaExecute {
		defer b.s.forgetFunctions()
	}
	if len(b.sd.Fields) == 0 {
		resultFormats = nil
	}
	if b.fromPeer {
		resultFormats = peerFormats(oidsOf(b.sd.Fields), resultFormats)
		paramFormats = peerFormats(b.sd.ParamOIDs, paramFormats)
	}
	b.s.notices = w
	defer func() { b.s.notices = nil }()
	before := b.s.TxStatus()
	rr := b.conn.ExecPrepared(ctx, b.sd.Name, params, paramFormats, resultFormats)
	err := relay(rr, w, false, b.fromPeer)
	if b.catalogStmt != nil {
		b.s.afterCatalog(ctx, b.catalogStmt.Stmt.Stmt, before, err)
		b.s.trackSettings(ctx, b.catalogStmt.Stmt.Stmt, b.catalogStmt.Text, before, err)
		b.s.trackPins(b.catalogStmt.Stmt.Stmt, err)
	}
	if !b.fromPeer {
		b.s.enforceReadOnly(ctx)
	}
	if b.readOnly {
		b.s.checkReader(ctx, b.peer)
	}
	return mapPosition(err, b.position)
}

// reprepare prepares the statement again when the session's connection it
// belongs on is no longer the one it was prepared on (the connection was
// lost, the peer was re-created, or the session borrowed another catalog
// connection, or one reset since). Like Postgres after a schema change, it
// refuses a statement whose result columns changed.
func (b *backendStatement) reprepare(ctx context.Context) error {
	var (
		conn *pgconn.PgConn
		err  error
	)
	if b.peer == "" {
		conn, err = b.s.catalogConn(ctx)
	} else {
		conn, err = b.s.peerConn(ctx, b.peer, b.readOnly)
	}
	if err != nil {
		return err
	}
	if conn == b.conn && (b.cat == nil || b.cat.gen == b.gen) {
		return nil
	}
	sd, err := conn.Prepare(ctx, b.s.nextName(), b.sql, b.paramOIDs)
	if err != nil {
		return mapPosition(err, b.position)
	}
	if !sameShape(sd, b.sd, b.fromPeer) {
		_ = conn.Deallocate(ctx, sd.Name)
		return sqlerr.New(pgerrcode.FeatureNotSupported, "cached plan must not change result type")
	}
	b.conn, b.sd = conn, sd
	if b.peer == "" {
		b.cat, b.gen = b.s.held, b.s.held.gen
	}
	return nil
}

// sameShape reports whether two descriptions have the same parameter and
// result types, as the client sees them.
func sameShape(a, b *pgconn.StatementDescription, fromPeer bool) bool {
	if len(a.ParamOIDs) != len(b.ParamOIDs) || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.ParamOIDs {
		if a.ParamOIDs[i] != b.ParamOIDs[i] {
			return false
		}
	}
	fa, fb := fieldsOf(a.Fields, fromPeer), fieldsOf(b.Fields, fromPeer)
	for i := range fa {
		if fa[i].DataTypeOID != fb[i].DataTypeOID || string(fa[i].Name) != string(fb[i].Name) {
			return false
		}
	}
	return true
}

// Close deallocates the statement where it still is: on a peer, or on the
// catalog connection the session holds. One prepared on a catalog
// connection given back since is left there: the connection is reset
// (DISCARD ALL) before another session uses it, and the session's own
// names are unique (nextName); if the session can take it back at once,
// the statement is dropped there.
func (b *backendStatement) Close(ctx context.Context) (err error) {
	if b.cat == nil || b.s.held == b.cat {
		if b.conn.IsClosed() || b.cat != nil && b.cat.gen != b.gen {
			return nil
		}
		return b.conn.Deallocate(ctx, b.sd.Name)
	}
	if b.s.held != nil || !b.s.ex.pool.tryTake(b.cat) { // b.cat.gen is not ours to read before
		return nil
	}
	// The connection is idle and still the session's: drop the statement
	// there, or it would pile up on a connection the session keeps using.
	if b.cat.gen == b.gen && !b.conn.IsClosed() {
		err = b.conn.Deallocate(ctx, b.sd.Name)
	}
	b.s.ex.pool.release(ctx, b.cat)
	return err
}

// verbStatement is one of Sluice's own statements, run at Execute. sql is the text it was parsed from,
// which positions refer to.
type verbStatement struct {
	s   *session
	st  sqlext.Statement
	sql string
}

func (v *verbStatement) ParamOIDs() []uint32 { return nil }

// Fields implements server.Statement: only VALIDATE MIRROR returns rows.
func (v *verbStatement) Fields() []pgproto3.FieldDescription {
	if _, ok := v.st.(*sqlext.ValidateMirror); ok {
		return validationFields()
	}
	return nil
}

func (v *verbStatement) Execute(ctx context.Context, _ [][]byte, _, resultFormats []int16, w server.ResultWriter) error {
	v.s.notices, v.s.resultFormats = w, resultFormats
	defer func() { v.s.notices, v.s.resultFormats = nil, nil }()
	err := v.s.exec(ctx, v.sql, v.st, w)
	if err != nil {
		v.s.abortBlock(ctx)
	}
	v.s.releaseCatalog(ctx)
	return err
}

func (v *verbStatement) Close(context.Context) error { return nil }

// emptyStatement is a prepared empty query string.
type emptyStatement struct{}

func (emptyStatement) ParamOIDs() []uint32                 { return nil }
func (emptyStatement) Fields() []pgproto3.FieldDescription { return nil }
func (emptyStatement) Close(context.Context) error         { return nil }
func (emptyStatement) Execute(_ context.Context, _ [][]byte, _, _ []int16, w server.ResultWriter) error {
	return w.EmptyQuery()
}
