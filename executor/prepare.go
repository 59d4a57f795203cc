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
func (s *session) Prepare(ctx context.Context, sql string, paramOIDs []uint32) (server.Statement, error) {
	stmts, err := parse(sql)
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
		r, err := s.routeOf(ctx, st)
		if err != nil {
			return nil, err
		}
		var conn *pgconn.PgConn
		if r.peer == "" {
			conn, err = s.catalogConn(ctx)
		} else {
			conn, err = s.peerConn(ctx, r.peer)
		}
		if err != nil {
			return nil, err
		}
		return s.prepareOn(ctx, conn, r.sql, paramOIDs, r.peer != "")
	case *sqlext.ExecutePeer:
		conn, err := s.peerConn(ctx, st.Peer)
		if err != nil {
			return nil, err
		}
		return s.prepareOn(ctx, conn, st.Query, nil, true)
	default:
		return &verbStatement{s: s, st: st}, nil
	}
}

func (s *session) prepareOn(ctx context.Context, conn *pgconn.PgConn, sql string, paramOIDs []uint32, federated bool) (server.Statement, error) {
	name := s.nextName()
	sd, err := conn.Prepare(ctx, name, sql, paramOIDs)
	if err != nil {
		return nil, err
	}
	ps := &backendStatement{s: s, conn: conn, sd: sd, federated: federated}
	if len(sd.Fields) > 0 {
		ps.fields = fieldsOf(sd.Fields, federated)
	}
	return ps, nil
}

// backendStatement is a statement prepared on the catalog or a peer.
type backendStatement struct {
	s         *session
	conn      *pgconn.PgConn
	sd        *pgconn.StatementDescription
	fields    []pgproto3.FieldDescription
	federated bool
}

func (b *backendStatement) ParamOIDs() []uint32                 { return b.sd.ParamOIDs }
func (b *backendStatement) Fields() []pgproto3.FieldDescription { return b.fields }

func (b *backendStatement) Execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16, w server.ResultWriter) error {
	if b.conn.IsClosed() {
		return sqlerr.New(pgerrcode.ConnectionDoesNotExist,
			"the connection this statement was prepared on was lost: prepare it again")
	}
	if len(b.sd.Fields) == 0 {
		resultFormats = nil
	}
	b.s.notices = w
	defer func() { b.s.notices = nil }()
	rr := b.conn.ExecPrepared(ctx, b.sd.Name, params, paramFormats, resultFormats)
	return relay(rr, w, false, b.federated)
}

func (b *backendStatement) Close(ctx context.Context) error {
	if b.conn.IsClosed() {
		return nil
	}
	return b.conn.Deallocate(ctx, b.sd.Name)
}

// verbStatement is one of Sluice's own statements, run at Execute.
type verbStatement struct {
	s  *session
	st sqlext.Statement
}

func (v *verbStatement) ParamOIDs() []uint32                 { return nil }
func (v *verbStatement) Fields() []pgproto3.FieldDescription { return nil }

func (v *verbStatement) Execute(ctx context.Context, _ [][]byte, _, _ []int16, w server.ResultWriter) error {
	v.s.notices = w
	defer func() { v.s.notices = nil }()
	return v.s.exec(ctx, v.st.SQL(), v.st, w)
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
