package executor

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// Queries on peers whose connector answers them itself
// (connectors.FederatedReader; the kinds are in peerkinds.go): SELECT ...
// FROM ch.table and EXECUTE ch('...') on a ClickHouse peer. The connector
// speaks to the peer and turns its results into Postgres rows; the session
// keeps one connection per peer, the transaction state, and the catalog's
// word on the peer: a statement prepared for a peer that was dropped or
// re-created since runs on the peer as it is now, if of the same kind.

// federatedConn is a session's connection to a peer for federated reads.
type federatedConn struct {
	conn    connectors.FederatedConn
	created time.Time // the peer's creation time: a re-created peer gets a new connection
}

// federatedConnOf returns the session's connection to peer p, a peer of a
// federated kind, made anew when the peer was re-created. The connector
// connects on first use and again after a failure.
func (s *session) federatedConnOf(p catalog.Peer, kind federatedKind) connectors.FederatedConn {
	if fc, ok := s.fedConns[p.Name]; ok {
		if fc.created.Equal(p.CreatedAt) {
			return fc.conn
		}
		s.closeFederated(p.Name)
	}
	if s.fedConns == nil {
		s.fedConns = make(map[string]*federatedConn)
	}
	fc := &federatedConn{conn: kind.reader.OpenFederated(p.Name, p.Options), created: p.CreatedAt}
	s.fedConns[p.Name] = fc
	return fc.conn
}

// closeFederated closes the session's federated connection to peer name,
// if any.
func (s *session) closeFederated(name string) {
	if fc, ok := s.fedConns[name]; ok {
		_ = fc.conn.Close()
		delete(s.fedConns, name)
	}
}

// federatedPeer reads peer name, of kind, from the catalog.
func (s *session) federatedPeer(ctx context.Context, name string, kind federatedKind) (catalog.Peer, error) {
	p, err := s.ex.cfg.Store.GetPeer(ctx, name)
	if errors.Is(err, catalog.ErrNotFound) {
		return p, sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", name)
	}
	if err == nil && p.Type != kind.peerType {
		// Dropped and re-created as another kind of peer since prepared.
		return p, sqlerr.New(pgerrcode.FeatureNotSupported, "peer %q is no longer a %s peer", name, kind.name).
			WithHint("Prepare the statement again.")
	}
	return p, err
}

// federatedQuery runs a federated query in the simple protocol.
func (s *session) federatedQuery(ctx context.Context, r route, kind federatedKind, w server.ResultWriter) error {
	return s.federatedConnOf(r.target, kind).Query(ctx, r.sql, w)
}

// prepareFederated prepares a federated query for the extended protocol.
func (s *session) prepareFederated(ctx context.Context, r route, kind federatedKind, paramOIDs []uint32) (*federatedStatement, error) {
	st, err := s.federatedConnOf(r.target, kind).Prepare(ctx, r.sql, paramOIDs)
	if err != nil {
		return nil, err
	}
	return &federatedStatement{s: s, peer: r.peer, kind: kind, st: st}, nil
}

// peerExecutor returns the session's connection to peer p for EXECUTE.
func (s *session) peerExecutor(st *sqlext.ExecutePeer, p catalog.Peer, kind federatedKind) (connectors.PeerExecutor, error) {
	pe, ok := s.federatedConnOf(p, kind).(connectors.PeerExecutor)
	if !ok {
		return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "EXECUTE on %s peer %q is not supported", kind.name, st.Peer).
			WithPosition(int(st.PeerPos))
	}
	return pe, nil
}

// executeFederated runs EXECUTE peer('...') in the simple protocol: the
// text as it is, with the peer's rights; its rows if it returns any.
func (s *session) executeFederated(ctx context.Context, st *sqlext.ExecutePeer, p catalog.Peer, kind federatedKind,
	w server.ResultWriter) error {
	pe, err := s.peerExecutor(st, p, kind)
	if err != nil {
		return err
	}
	return pe.Execute(ctx, st.Query, int(st.PeerPos), w)
}

// prepareExecuteFederated prepares EXECUTE peer('...') for the extended
// protocol.
func (s *session) prepareExecuteFederated(ctx context.Context, st *sqlext.ExecutePeer, p catalog.Peer,
	kind federatedKind) (*federatedStatement, error) {
	pe, err := s.peerExecutor(st, p, kind)
	if err != nil {
		return nil, err
	}
	fs, err := pe.PrepareExecute(ctx, st.Query, int(st.PeerPos))
	if err != nil {
		return nil, err
	}
	return &federatedStatement{s: s, peer: st.Peer, kind: kind, st: fs}, nil
}

// federatedStatement is a statement prepared by a peer's connector: the
// connector describes and runs it; the session checks the transaction
// state and the parameters' count, and runs it on its connection to the
// peer as the catalog has it now.
type federatedStatement struct {
	s    *session
	peer string
	kind federatedKind
	st   connectors.FederatedStatement
}

var _ server.Statement = (*federatedStatement)(nil)

// ParamOIDs implements server.Statement.
func (fs *federatedStatement) ParamOIDs() []uint32 { return fs.st.ParamOIDs() }

// Fields implements server.Statement.
func (fs *federatedStatement) Fields() []pgproto3.FieldDescription { return fs.st.Fields() }

// Close implements server.Statement: there is nothing to release.
func (fs *federatedStatement) Close(context.Context) error { return nil }

// Execute implements server.Statement.
func (fs *federatedStatement) Execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16,
	w server.ResultWriter) error {
	err := fs.execute(ctx, params, paramFormats, resultFormats, w)
	if err != nil {
		fs.s.abortBlock(ctx)
	}
	return err
}

func (fs *federatedStatement) execute(ctx context.Context, params [][]byte, paramFormats, resultFormats []int16,
	w server.ResultWriter) error {
	if fs.s.TxStatus() == 'E' {
		return errAborted()
	}
	if oids := fs.st.ParamOIDs(); len(params) != len(oids) {
		return sqlerr.New(pgerrcode.ProtocolViolation, "bind message supplies %d parameters, but prepared statement requires %d",
			len(params), len(oids))
	}
	p, err := fs.s.federatedPeer(ctx, fs.peer, fs.kind)
	if err != nil {
		return err
	}
	return fs.st.Execute(ctx, fs.s.federatedConnOf(p, fs.kind), params, paramFormats, resultFormats, w)
}
