package executor

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors/postgres"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// route is where a standard SQL statement runs.
type route struct {
	peer string // "" for the catalog
	sql  string // the text to send (peer qualifiers removed)
}

// routeOf decides where p runs. A statement that names a peer as the first
// part of a three-part table name (peer.schema.table) runs on that peer with
// the peer part removed; all other statements run on the catalog, read-only.
func (s *session) routeOf(ctx context.Context, p *sqlext.Passthrough) (route, error) {
	refs := peerRefs(p.Stmt)
	if len(refs) == 0 {
		if err := catalogAllowed(p); err != nil {
			return route{}, err
		}
		return route{sql: p.Text}, nil
	}
	peer := refs[0].name
	for _, r := range refs[1:] {
		if r.name != peer {
			return route{}, sqlerr.New(pgerrcode.FeatureNotSupported,
				"a query cannot read from two peers (%q and %q)", peer, r.name).WithPosition(r.location + 1)
		}
	}
	if _, err := s.ex.cfg.Store.GetPeer(ctx, peer); err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return route{}, sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", peer).
				WithPosition(refs[0].location + 1).
				WithHint("a three-part name peer.schema.table reads from a peer; see SELECT * FROM peers")
		}
		return route{}, err
	}
	if p.Stmt.Stmt.GetSelectStmt() == nil && p.Stmt.Stmt.GetExplainStmt() == nil {
		return route{}, sqlerr.New(pgerrcode.FeatureNotSupported,
			"only SELECT can read from a peer by name").
			WithHint("to run other SQL on peer %q, use EXECUTE %s('...')", peer, peer)
	}
	return route{peer: peer, sql: stripQualifiers(p.Text, refs)}, nil
}

// peerRef is a table reference whose first name part may be a peer.
type peerRef struct {
	name     string
	location int // 0-based byte offset in the statement text
}

// peerRefs finds every table reference with three name parts.
func peerRefs(raw *pg_query.RawStmt) []peerRef {
	var refs []peerRef
	walk(raw.ProtoReflect(), func(m protoreflect.Message) {
		if rv, ok := m.Interface().(*pg_query.RangeVar); ok && rv.Catalogname != "" {
			refs = append(refs, peerRef{name: rv.Catalogname, location: int(rv.Location)})
		}
	})
	sort.Slice(refs, func(i, j int) bool { return refs[i].location < refs[j].location })
	return refs
}

// walk calls f on m and every message below it.
func walk(m protoreflect.Message, f func(protoreflect.Message)) {
	f(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := 0; i < list.Len(); i++ {
				walk(list.Get(i).Message(), f)
			}
		case fd.IsMap():
		case fd.Message() != nil:
			walk(v.Message(), f)
		}
		return true
	})
}

// stripQualifiers removes "peer." before each reference.
func stripQualifiers(text string, refs []peerRef) string {
	var b strings.Builder
	last := 0
	for _, r := range refs {
		end := qualifierEnd(text, r.location)
		if end < 0 || r.location < last {
			continue
		}
		b.WriteString(text[last:r.location])
		last = end
	}
	b.WriteString(text[last:])
	return b.String()
}

// qualifierEnd returns the offset just past "name ." starting at i, or -1.
func qualifierEnd(text string, i int) int {
	if i >= len(text) {
		return -1
	}
	j := i
	if text[j] == '"' {
		j++
		for j < len(text) {
			if text[j] == '"' {
				if j+1 < len(text) && text[j+1] == '"' {
					j += 2
					continue
				}
				break
			}
			j++
		}
		if j >= len(text) {
			return -1
		}
		j++
	} else {
		for j < len(text) && isIdentByte(text[j]) {
			j++
		}
	}
	for j < len(text) && isSpace(text[j]) {
		j++
	}
	if j >= len(text) || text[j] != '.' {
		return -1
	}
	j++
	for j < len(text) && isSpace(text[j]) {
		j++
	}
	return j
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// catalogAllowed admits the statements a client may run on the catalog:
// queries, session settings, transactions and cursors. The catalog is
// Sluice's state; it changes only through Sluice's own statements.
func catalogAllowed(p *sqlext.Passthrough) error {
	n := p.Stmt.Stmt
	switch {
	case n.GetSelectStmt() != nil, n.GetVariableSetStmt() != nil, n.GetVariableShowStmt() != nil,
		n.GetTransactionStmt() != nil, n.GetExplainStmt() != nil, n.GetDeallocateStmt() != nil,
		n.GetDiscardStmt() != nil, n.GetPrepareStmt() != nil, n.GetExecuteStmt() != nil,
		n.GetDeclareCursorStmt() != nil, n.GetFetchStmt() != nil, n.GetClosePortalStmt() != nil,
		n.GetListenStmt() != nil, n.GetUnlistenStmt() != nil:
		return nil
	}
	return sqlerr.New(pgerrcode.ReadOnlySQLTransaction, "the Sluice catalog is read-only: %s is not allowed here", stmtKind(n)).
		WithHint("read status with SELECT (peers, ...); run SQL on a peer with EXECUTE peer('...') " +
			"or query it as peer.schema.table")
}

// stmtKind names a parse node's statement kind, e.g. "CREATE TABLE".
func stmtKind(n *pg_query.Node) string {
	if n == nil || n.Node == nil {
		return "this statement"
	}
	name := string(n.ProtoReflect().WhichOneof(n.ProtoReflect().Descriptor().Oneofs().Get(0)).Name())
	name = strings.TrimSuffix(name, "_stmt")
	return strings.ToUpper(strings.ReplaceAll(name, "_", " "))
}

// passthrough runs standard SQL in the simple protocol.
func (s *session) passthrough(ctx context.Context, full string, p *sqlext.Passthrough, w server.ResultWriter) error {
	r, err := s.routeOf(ctx, p)
	if err != nil {
		return err
	}
	if r.peer == "" {
		conn, err := s.catalogConn(ctx)
		if err != nil {
			return err
		}
		return shiftPosition(relayAll(conn.Exec(ctx, r.sql), w, false), full, p.Offset)
	}
	if s.TxStatus() == 'E' {
		return sqlerr.New(pgerrcode.InFailedSQLTransaction,
			"current transaction is aborted, commands ignored until end of transaction block")
	}
	conn, err := s.peerConn(ctx, r.peer)
	if err != nil {
		return err
	}
	return relayAll(conn.Exec(ctx, r.sql), w, true)
}

// peerConn returns the session's connection to a Postgres peer, opening it
// on first use and again when the peer was re-created or the connection lost.
func (s *session) peerConn(ctx context.Context, name string) (*pgconn.PgConn, error) {
	peer, err := s.ex.cfg.Store.GetPeer(ctx, name)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", name)
		}
		return nil, err
	}
	if pc, ok := s.peers[name]; ok {
		if !pc.conn.IsClosed() && pc.created.Equal(peer.CreatedAt) {
			return pc.conn, nil
		}
		pc.conn.Close(ctx)
		delete(s.peers, name)
	}
	if peer.Type != string(sqlext.PeerPostgres) {
		return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "queries on %s peer %q are not supported yet", peer.Type, name)
	}
	cfg, err := postgres.ParsePeerOptions(peer.Options)
	if err != nil {
		return nil, err
	}
	cc, err := cfg.ConnConfig("sluice-federated")
	if err != nil {
		return nil, err
	}
	s.forwardParams(cc.RuntimeParams)
	cc.RuntimeParams["application_name"] = "sluice-federated"
	cc.OnNotice = s.onNotice
	conn, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection, "connect to peer %q: %v", name, err)
	}
	s.peers[name] = &peerConn{conn: conn, created: peer.CreatedAt}
	return conn, nil
}
