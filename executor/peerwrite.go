package executor

import (
	"context"
	"strings"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Writes by peer name, as PeerDB forwards them: a statement of one of the
// kinds forwardedWrite names, whose tables are named peer.schema.table on
// one Postgres peer, runs on that peer with the peer part removed, on the
// session's read-write connection to it (EXECUTE's), and the client gets
// exactly what the peer returns: command tag and row count, RETURNING rows,
// notices and errors (positions mapped back to the statement as written).
//
// Such a write runs in a transaction of its own on the peer and is
// committed when it succeeds, inside a transaction block too: the block's
// ROLLBACK does not undo it, and a WARNING says so. After an error in a
// block it is refused (25P02) like any statement. The peer guard
// (peerguard.go) refuses it when it acts on a mirror's slot or
// publication; the function allow-list of read-only queries does not
// apply (a write may call what EXECUTE may). Every table the statement
// names must be on that peer: a name without the peer part is refused
// (0A000), as it would otherwise silently mean a table of the peer that
// the client may have thought was elsewhere.

// forwardedKinds are the statement kinds (stmtKind) that Sluice forwards
// to a peer named in them.
var forwardedKinds = map[string]bool{
	"INSERT": true, "UPDATE": true, "DELETE": true, "MERGE": true,
	"CREATE TABLE": true, "CREATE TABLE AS": true, "CREATE INDEX": true,
	"ALTER TABLE": true, "TRUNCATE TABLE": true, "DROP TABLE": true, "DROP INDEX": true,
}

// forwardedWrite names the kind of statement n is when Sluice forwards it
// to a peer named in it ("INSERT", "DROP TABLE", ...), or returns "".
func forwardedWrite(n *pg_query.Node) string {
	if k := stmtKind(n); forwardedKinds[k] {
		return k
	}
	return ""
}

// dropRefs finds the peer parts of DROP TABLE's and DROP INDEX's
// three-part names (peer.schema.name), whose parse tree has no locations,
// by scanning the statement's tokens.
func dropRefs(p *sqlext.Passthrough) []peerCandidate {
	d := p.Stmt.Stmt.GetDropStmt()
	if d == nil || forwardedWrite(p.Stmt.Stmt) == "" {
		return nil
	}
	res, err := pg_query.Scan(p.Text)
	if err != nil {
		return nil
	}
	var toks []*pg_query.ScanToken
	for _, t := range res.GetTokens() {
		if t.GetToken() != pg_query.Token_C_COMMENT && t.GetToken() != pg_query.Token_SQL_COMMENT {
			toks = append(toks, t)
		}
	}
	isName := func(i int) bool {
		return i >= 0 && i < len(toks) && (toks[i].GetToken() == pg_query.Token_IDENT ||
			toks[i].GetKeywordKind() != pg_query.KeywordKind_NO_KEYWORD)
	}
	isDot := func(i int) bool { return i >= 0 && i < len(toks) && toks[i].GetToken() == pg_query.Token_ASCII_46 }
	var refs []peerCandidate
	for i := range toks {
		if isName(i) && isDot(i+1) && isName(i+2) && isDot(i+3) && isName(i+4) && !isDot(i-1) && !isDot(i+5) {
			t := toks[i]
			refs = append(refs, peerCandidate{peerRef: peerRef{
				name: identValue(p.Text[t.GetStart():t.GetEnd()]), location: int(t.GetStart())}})
		}
	}
	return refs
}

// identValue returns the name an identifier token stands for: a quoted one
// as written (doubled quotes undoubled), others in lower case.
func identValue(tok string) string {
	if strings.HasPrefix(tok, `"`) && strings.HasSuffix(tok, `"`) && len(tok) >= 2 {
		return strings.ReplaceAll(tok[1:len(tok)-1], `""`, `"`)
	}
	return strings.ToLower(tok)
}

// checkWriteNames refuses a forwarded write to peer that also names a table
// without the peer part (a WITH query's name aside), which would be read on
// the peer though it reads like a table elsewhere. at maps a byte offset in
// the statement to a position in the client's query.
func checkWriteNames(n *pg_query.Node, peer, kind string, at func(int) int) error {
	if d := n.GetDropStmt(); d != nil {
		for _, o := range d.GetObjects() {
			items := o.GetList().GetItems()
			if len(items) != 3 || items[0].GetString_().GetSval() != peer {
				return errWriteNames(kind, peer, listName(items), 0)
			}
		}
		return nil
	}
	ctes := map[string]bool{}
	walk(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if c, ok := m.Interface().(*pg_query.CommonTableExpr); ok {
			ctes[c.GetCtename()] = true
		}
		return true
	})
	var bad *pg_query.RangeVar
	walk(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if v, ok := m.Interface().(*pg_query.RangeVar); ok && v.GetCatalogname() == "" {
			if v.GetSchemaname() != "" || !ctes[v.GetRelname()] {
				bad = v
			}
		}
		return bad == nil
	})
	if bad == nil {
		return nil
	}
	name := bad.GetRelname()
	if bad.GetSchemaname() != "" {
		name = bad.GetSchemaname() + "." + name
	}
	return errWriteNames(kind, peer, name, positionAt(at, int(bad.GetLocation())))
}

func errWriteNames(kind, peer, name string, pos int) error {
	return sqlerr.New(pgerrcode.FeatureNotSupported,
		"%s on peer %q names table %s without the peer part", kind, peer, name).
		WithPosition(pos).
		WithDetail("A statement that writes to a peer by name runs entirely on that peer, where the catalog's "+
			"tables and other peers' are not visible: every table it names must be named peer.schema.table. "+
			"Nothing was sent to the peer.").
		WithHint("Name every table as %s.schema.table, or use EXECUTE %s('...').", quoteIdent(peer), quoteIdent(peer))
}

// listName renders a list of name parts as a dotted name.
func listName(items []*pg_query.Node) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = it.GetString_().GetSval()
	}
	return strings.Join(parts, ".")
}

// errTwoPeers refuses a statement naming two peers, pointing at the second.
func errTwoPeers(kind, first, second string, pos int) error {
	return sqlerr.New(pgerrcode.FeatureNotSupported,
		"%s cannot name two peers (%q and %q)", kind, first, second).WithPosition(pos).
		WithHint("A statement naming peers by peer.schema.table runs on one peer; run one statement per peer.")
}

// errWriteClickHouse refuses a write by name to a ClickHouse peer.
func errWriteClickHouse(kind, peer string, pos int) error {
	return sqlerr.New(pgerrcode.FeatureNotSupported,
		"%s on ClickHouse peer %q by name is not supported", kind, peer).WithPosition(pos).
		WithDetail("Writes by peer.schema.table are forwarded to Postgres peers only.").
		WithHint("Run it in ClickHouse's SQL with EXECUTE %s('...').", quoteIdent(peer))
}

// forwardWrite runs a forwarded write (route r) on its peer's read-write
// connection and relays every result.
func (s *session) forwardWrite(ctx context.Context, r route, w server.ResultWriter) error {
	if err := s.checkOwned(ctx, r.guard, r.at); err != nil {
		return err
	}
	conn, err := s.peerConn(ctx, r.peer, false)
	if err != nil {
		return err
	}
	s.warnOwnTransaction(r, w)
	return mapPosition(relayAll(conn.Exec(ctx, r.sql), w, true), r.position)
}

// warnOwnTransaction tells a client inside a transaction block that a
// forwarded write commits on its own.
func (s *session) warnOwnTransaction(r route, w server.ResultWriter) {
	if s.TxStatus() != 'T' {
		return
	}
	_ = w.Notice(sqlerr.Warning("%s on peer %q runs in its own transaction on the peer: "+
		"it is committed when it succeeds, and a ROLLBACK of this transaction block does not undo it", r.write, r.peer))
}
