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
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// route is where a standard SQL statement runs.
type route struct {
	peer string // "" for the catalog
	sql  string // the text to send (peer qualifiers removed)
	// position maps a position in sql to one in the client's query string.
	position func(pos int) int
	// target is the peer as the catalog had it when the statement was
	// routed (zero for the catalog).
	target catalog.Peer
	// guard is what the peer guard judges in the statement (peerguard.go),
	// and at maps a byte offset in the statement's text to a position in
	// the client's query string.
	guard *guardPlan
	at    func(int) int
	// write names a forwarded write's kind ("INSERT", ...; peerwrite.go),
	// run on the peer's read-write connection; "" for a read.
	write string
	// cursor is a cursor statement on a peer's cursor (peercursor.go).
	cursor *cursorOp
}

// routeOf decides where p, a statement of the query string full, runs. A
// statement that names a peer as the first part of a three-part table name
// (peer.schema.table) or of a four-part column name (peer.schema.table.col)
// runs on that peer with the peer part removed, if it only reads; so does
// one naming a ClickHouse peer as the first part of a two-part table name
// (peer.table) or three-part column name (peer.table.col). Writes by peer
// name (peerwrite.go) and cursors over a peer (peercursor.go) run on the
// peer too. All other statements run on the catalog, read-only.
func (s *session) routeOf(ctx context.Context, full string, p *sqlext.Passthrough) (route, error) {
	r, err := s.route(ctx, full, p)
	if err != nil && s.TxStatus() == 'E' {
		// In a failed transaction block Postgres refuses every statement
		// alike, before looking at it.
		return route{}, errAborted()
	}
	return r, err
}

func (s *session) route(ctx context.Context, full string, p *sqlext.Passthrough) (route, error) {
	if p.Stmt.Stmt.GetCopyStmt() != nil {
		return route{}, errCopy()
	}
	at := func(location int) int { return charPos(full, p.Offset+location) }
	if r, ok, err := s.cursorRoute(full, p); ok || err != nil {
		return r, err
	}
	lookup := s.peerLookup(ctx)
	refs, err := s.peerNameRefs(append(peerRefs(p.Stmt), dropRefs(p)...), lookup)
	if err != nil {
		return route{}, err
	}
	if len(refs) == 0 {
		if err := catalogAllowed(p); err != nil {
			return route{}, err
		}
		guard := planOf(p.Stmt.Stmt, 0)
		if err := s.checkOwned(ctx, guard, at); err != nil {
			return route{}, err
		}
		return route{sql: p.Text, position: offsetPositions(full, p.Offset), guard: guard, at: at}, nil
	}
	peer := refs[0].name
	kind := forwardedWrite(p.Stmt.Stmt)
	for _, r := range refs[1:] {
		if r.name != peer && kind != "" {
			return route{}, errTwoPeers(kind, peer, r.name, at(r.location))
		}
		if r.name != peer {
			return route{}, sqlerr.New(pgerrcode.FeatureNotSupported,
				"a query cannot read from two peers (%q and %q)", peer, r.name).WithPosition(at(r.location))
		}
	}
	target, err := lookup(peer)
	if err != nil {
		return route{}, err
	}
	if target == nil {
		return route{}, sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", peer).
			WithPosition(at(refs[0].location)).
			WithHint("A three-part name peer.schema.table reads from a peer; see SELECT * FROM peers.")
	}
	if kind != "" || p.Stmt.Stmt.GetDeclareCursorStmt() != nil {
		return s.peerStatementRoute(ctx, full, p, refs, *target, at)
	}
	if err := federatedAllowed(p, peer); err != nil {
		return route{}, err
	}
	var guard *guardPlan
	if target.Type == string(sqlext.PeerPostgres) {
		guard = planOf(p.Stmt.Stmt, 0)
		if err := s.checkOwned(ctx, guard, at); err != nil {
			return route{}, err
		}
	}
	spans := qualifierSpans(p.Text, refs)
	return route{
		peer:     peer,
		sql:      removeSpans(p.Text, spans),
		position: strippedPositions(full, p.Offset, p.Text, spans),
		target:   *target,
		guard:    guard,
		at:       at,
	}, nil
}

// peerLookup returns a function that reads a peer from the catalog (nil
// when there is none), once per name: routing a statement reads each name
// at most once.
func (s *session) peerLookup(ctx context.Context) func(name string) (*catalog.Peer, error) {
	seen := map[string]*catalog.Peer{}
	return func(name string) (*catalog.Peer, error) {
		if p, ok := seen[name]; ok {
			return p, nil
		}
		p, err := s.ex.cfg.Store.GetPeer(ctx, name)
		if errors.Is(err, catalog.ErrNotFound) {
			seen[name] = nil
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		seen[name] = &p
		return &p, nil
	}
}

// peerNameRefs keeps the candidates that name a peer: all full ones, and
// the short ones whose first part is a peer of a federated kind (a
// ClickHouse peer; peerkinds.go). The names of
// Postgres' system schemas (pg_catalog, information_schema, ...) and of
// Sluice's are not looked up: they always mean those schemas.
func (s *session) peerNameRefs(cands []peerCandidate, lookup func(string) (*catalog.Peer, error)) ([]peerRef, error) {
	var refs []peerRef
	for _, c := range cands {
		if c.short {
			if catalogSchema(c.name) {
				continue
			}
			p, err := lookup(c.name)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			if _, ok := s.ex.federatedKindOf(p.Type); !ok {
				continue
			}
		}
		refs = append(refs, c.peerRef)
	}
	return refs, nil
}

// catalogSchema reports whether name is a schema every catalog has.
func catalogSchema(name string) bool {
	return strings.HasPrefix(name, "pg_") || name == "information_schema" ||
		name == catalog.StatusSchema || name == "sluice"
}

// peerRef is a reference whose first name part is a peer.
type peerRef struct {
	name     string
	location int // 0-based byte offset in the statement text
}

// peerCandidate is a reference whose first name part may be a peer.
type peerCandidate struct {
	peerRef
	// short marks a table name of two parts or a column name of three,
	// which name a peer only if it is a ClickHouse peer (peer.table).
	short bool
}

// peerRefs finds every table reference with three name parts and every
// column reference with four (peer.schema.table.column or .*), and the
// short ones: tables of two parts, columns of three.
func peerRefs(raw *pg_query.RawStmt) []peerCandidate {
	var refs []peerCandidate
	add := func(name string, location int32, short bool) {
		refs = append(refs, peerCandidate{peerRef: peerRef{name: name, location: int(location)}, short: short})
	}
	walk(raw.ProtoReflect(), func(m protoreflect.Message) bool {
		switch v := m.Interface().(type) {
		case *pg_query.RangeVar:
			if v.GetCatalogname() != "" {
				add(v.GetCatalogname(), v.GetLocation(), false)
			} else if v.GetSchemaname() != "" {
				add(v.GetSchemaname(), v.GetLocation(), true)
			}
		case *pg_query.ColumnRef:
			if f := v.GetFields(); (len(f) == 4 || len(f) == 3) && f[0].GetString_() != nil {
				add(f[0].GetString_().GetSval(), v.GetLocation(), len(f) == 3)
			}
		}
		return true
	})
	sort.Slice(refs, func(i, j int) bool { return refs[i].location < refs[j].location })
	return refs
}

// qualifierSpans returns the "peer ." before each reference, in order.
func qualifierSpans(text string, refs []peerRef) []span {
	var spans []span
	last := 0
	for _, r := range refs {
		end := qualifierEnd(text, r.location)
		if end < 0 || r.location < last {
			continue
		}
		spans = append(spans, span{start: r.location, end: end})
		last = end
	}
	return spans
}

// qualifierEnd returns the offset just past "name ." starting at i, or -1.
func qualifierEnd(text string, i int) int {
	if i < 0 || i >= len(text) {
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

// passthrough runs standard SQL in the simple protocol.
func (s *session) passthrough(ctx context.Context, full string, p *sqlext.Passthrough, w server.ResultWriter) error {
	r, err := s.routeOf(ctx, full, p)
	if err != nil {
		return err
	}
	if r.write != "" || r.cursor != nil {
		return s.peerStatement(ctx, r, w)
	}
	if r.peer == "" {
		conn, err := s.catalogConn(ctx)
		if err != nil {
			return err
		}
		before := conn.TxStatus()
		err = relayAll(conn.Exec(ctx, r.sql), w, false)
		s.afterCatalog(ctx, p.Stmt.Stmt, before, err)
		s.trackSettings(ctx, p.Stmt.Stmt, p.Text, before, err)
		s.trackPins(p.Stmt.Stmt, err)
		s.enforceReadOnly(ctx)
		return mapPosition(err, r.position)
	}
	if s.TxStatus() == 'E' {
		return errAborted()
	}
	if kind, ok := s.ex.federatedKindOf(r.target.Type); ok {
		return s.federatedQuery(ctx, r, kind, w)
	}
	conn, err := s.peerConn(ctx, r.peer, true)
	if err != nil {
		return err
	}
	if err := s.checkCalls(ctx, r.peer, r.guard, r.at); err != nil {
		return err
	}
	err = relayAll(conn.Exec(ctx, r.sql), w, true)
	s.checkReader(ctx, r.peer)
	return mapPosition(err, r.position)
}

// peerConn returns the session's connection to a Postgres peer, opening it
// on first use and again when the peer was re-created or the connection
// lost. readOnly selects the connection for federated queries, opened with
// default_transaction_read_only on, rather than EXECUTE's. A new connection
// gets the session's settings (settings.go).
func (s *session) peerConn(ctx context.Context, name string, readOnly bool) (*pgconn.PgConn, error) {
	peer, err := s.ex.cfg.Store.GetPeer(ctx, name)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, sqlerr.New(pgerrcode.UndefinedObject, "peer %q does not exist", name)
		}
		return nil, err
	}
	conns := s.peers
	if readOnly {
		conns = s.readers
	}
	if pc, ok := conns[name]; ok {
		if !pc.conn.IsClosed() && pc.created.Equal(peer.CreatedAt) && (!readOnly || !readOnlyLost(pc.conn)) {
			return pc.conn, nil
		}
		pc.conn.Close(ctx)
		delete(conns, name)
	}
	kind, ok := s.ex.cfg.Kinds.Lookup(peer.Type)
	if !ok || kind.Wire == nil {
		return nil, sqlerr.New(pgerrcode.FeatureNotSupported, "queries on %s peer %q are not supported yet", peer.Type, name)
	}
	cc, err := kind.Wire.ConnConfig(peer.Options, "sluice-federated")
	if err != nil {
		return nil, err
	}
	s.forwardParams(cc.RuntimeParams)
	cc.RuntimeParams["application_name"] = "sluice-federated"
	if readOnly {
		cc.RuntimeParams["default_transaction_read_only"] = "on"
	}
	cc.OnNotice = s.onNotice
	conn, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, peerConnectError(kind.Wire.ConnectFailed(cc, err), "peer %q", name)
	}
	s.replay(ctx, conn, s.settings)
	conns[name] = &peerConn{conn: conn, created: peer.CreatedAt}
	return conn, nil
}

// readOnlyLost reports whether a read-only connection's server says
// read-only mode is off for its next transactions (Postgres 14 and later
// report the setting); such a connection is replaced before it runs
// anything else.
func readOnlyLost(conn *pgconn.PgConn) bool {
	v := conn.ParameterStatus("default_transaction_read_only")
	return v != "" && v != "on"
}

// checkReader closes the read-only connection to peer if a query turned
// read-only mode off on it (set_config can; Postgres 14 and later report
// the setting), so that the next query gets a fresh read-only connection.
func (s *session) checkReader(ctx context.Context, peer string) {
	pc, ok := s.readers[peer]
	if !ok {
		return
	}
	if readOnlyLost(pc.conn) {
		pc.conn.Close(ctx)
		delete(s.readers, peer)
	}
}

// closePeer closes the session's connections to peer.
func (s *session) closePeer(ctx context.Context, peer string) {
	s.cursors.forgetPeer(peer)
	for _, m := range []map[string]*peerConn{s.peers, s.readers} {
		if pc, ok := m[peer]; ok {
			pc.conn.Close(ctx)
			delete(m, peer)
		}
	}
	s.closeFederated(peer)
}
