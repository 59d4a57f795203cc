package executor

import (
	"strings"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The checks here keep what a client sends read-only: on the catalog, which
// changes only through Sluice's own statements, and on a peer named in a
// query (peer.schema.table), which EXECUTE is for. They are one layer of
// several: the catalog connection logs in as an unprivileged reader role in
// read-only mode, and federated queries run on a read-only peer connection.

// catalogHint tells a client what it can do instead of writing the catalog.
const catalogHint = "Read status with SELECT (peers, ...); run SQL on a peer with EXECUTE peer('...') " +
	"or query it as peer.schema.table."

// guardedSettings are the settings a client may not SET or RESET: they guard
// read-only mode and the role the catalog is queried as.
var guardedSettings = map[string]string{
	"default_transaction_read_only": "default_transaction_read_only",
	"transaction_read_only":         "transaction_read_only",
	"role":                          "ROLE",
	"session_authorization":         "SESSION AUTHORIZATION",
}

// errCopy refuses COPY, whose data sub-protocol Sluice's front end does not
// speak.
func errCopy() *sqlerr.Error {
	return sqlerr.New(pgerrcode.FeatureNotSupported, "COPY is not supported through Sluice's front end").
		WithHint("Read rows with SELECT (from a peer as peer.schema.table), or connect to the peer itself to run COPY.")
}

// catalogAllowed admits the statements a client may run on the catalog:
// queries, session settings, transactions and cursors, none of which may
// write (see writer). The catalog is Sluice's state; it changes only through
// Sluice's own statements.
func catalogAllowed(p *sqlext.Passthrough) error {
	n := p.Stmt.Stmt
	if n.GetCopyStmt() != nil {
		return errCopy()
	}
	if what := writer(n); what != "" {
		return readOnlyError(what)
	}
	switch {
	case n.GetSelectStmt() != nil, n.GetVariableSetStmt() != nil, n.GetVariableShowStmt() != nil,
		n.GetTransactionStmt() != nil, n.GetExplainStmt() != nil, n.GetDeallocateStmt() != nil,
		n.GetDiscardStmt() != nil, n.GetPrepareStmt() != nil, n.GetExecuteStmt() != nil,
		n.GetDeclareCursorStmt() != nil, n.GetFetchStmt() != nil, n.GetClosePortalStmt() != nil,
		n.GetListenStmt() != nil, n.GetUnlistenStmt() != nil:
		return nil
	}
	return readOnlyError(stmtKind(n))
}

func readOnlyError(what string) error {
	return sqlerr.New(pgerrcode.ReadOnlySQLTransaction, "the Sluice catalog is read-only: %s is not allowed here", what).
		WithHint("%s", catalogHint)
}

// federatedAllowed admits a query naming peer as peer.schema.table: a SELECT
// or EXPLAIN that cannot write (see writer). Writes by peer name and
// cursors are routed before (peerwrite.go, peercursor.go).
func federatedAllowed(p *sqlext.Passthrough, peer string) error {
	n := p.Stmt.Stmt
	if n.GetSelectStmt() == nil && n.GetExplainStmt() == nil {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "%s cannot name a peer's table", stmtKind(n)).
			WithDetail("By peer name Sluice runs SELECT, EXPLAIN, DECLARE CURSOR, INSERT, UPDATE, DELETE, MERGE, "+
				"CREATE TABLE [AS], CREATE INDEX, ALTER TABLE, TRUNCATE, DROP TABLE and DROP INDEX.").
			WithHint("To run other SQL on peer %q, use EXECUTE %s('...').", peer, quoteIdent(peer))
	}
	if writer(n) != "" {
		return sqlerr.New(pgerrcode.FeatureNotSupported, "only SELECT can read from a peer by name").
			WithHint("To run other SQL on peer %q, use EXECUTE %s('...').", peer, quoteIdent(peer))
	}
	return nil
}

// writer names the first thing in n's tree that could write or leave
// read-only mode, or returns "": a data-modifying statement anywhere (INSERT,
// UPDATE, DELETE, MERGE, also inside WITH, EXPLAIN, PREPARE or DECLARE),
// SELECT INTO and CREATE TABLE AS, a locking clause (FOR UPDATE, ...), a READ
// WRITE transaction mode, a SET or RESET of a guarded setting, set_config()
// of one, and a call of a denied function.
func writer(n *pg_query.Node) string {
	var what string
	walk(n.ProtoReflect(), func(m protoreflect.Message) bool {
		switch v := m.Interface().(type) {
		case *pg_query.InsertStmt:
			what = "INSERT"
		case *pg_query.UpdateStmt:
			what = "UPDATE"
		case *pg_query.DeleteStmt:
			what = "DELETE"
		case *pg_query.MergeStmt:
			what = "MERGE"
		case *pg_query.CreateTableAsStmt:
			what = stmtKind(&pg_query.Node{Node: &pg_query.Node_CreateTableAsStmt{CreateTableAsStmt: v}})
		case *pg_query.SelectStmt:
			if v.GetIntoClause() != nil {
				what = "SELECT INTO"
			}
		case *pg_query.LockingClause:
			what = "SELECT " + lockingKind(v.GetStrength())
		case *pg_query.DefElem:
			if v.GetDefname() == "transaction_read_only" && !isTrue(v.GetArg()) {
				what = "a READ WRITE transaction"
			}
		case *pg_query.VariableSetStmt:
			if name, ok := guardedSettings[strings.ToLower(v.GetName())]; ok {
				verb := "SET"
				if v.GetKind() == pg_query.VariableSetKind_VAR_RESET {
					verb = "RESET"
				}
				what = verb + " " + name
			}
		case *pg_query.FuncCall:
			if name, ok := setConfigOf(v); ok {
				what = "set_config('" + name + "', ...)"
			} else if name := funcName(v); deniedFunctions[name] {
				what = name + "()"
			}
		}
		return what == ""
	})
	return what
}

// deniedFunctions act beyond the session although read-only mode allows
// them (large objects, advisory locks, other backends), or run SQL that the
// checks here cannot see (query_to_xml).
var deniedFunctions = map[string]bool{
	"lo_create": true, "lo_creat": true, "lo_import": true, "lo_from_bytea": true, "lo_put": true,
	"lo_unlink": true, "lo_open": true, "lowrite": true, "lo_truncate": true, "lo_truncate64": true,
	"pg_advisory_lock": true, "pg_advisory_lock_shared": true, "pg_advisory_xact_lock": true,
	"pg_advisory_xact_lock_shared": true, "pg_try_advisory_lock": true, "pg_try_advisory_lock_shared": true,
	"pg_try_advisory_xact_lock": true, "pg_try_advisory_xact_lock_shared": true,
	"pg_cancel_backend": true, "pg_terminate_backend": true,
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
}

// funcName returns a function call's name, lower case, without its schema.
func funcName(f *pg_query.FuncCall) string {
	names := f.GetFuncname()
	if len(names) == 0 {
		return ""
	}
	return strings.ToLower(names[len(names)-1].GetString_().GetSval())
}

// isTrue reports whether a transaction mode's argument is a constant true
// (READ ONLY), as opposed to false (READ WRITE) or anything else.
func isTrue(n *pg_query.Node) bool {
	c := n.GetAConst()
	return c != nil && !c.GetIsnull() && (c.GetIval() != nil && c.GetIval().GetIval() != 0 ||
		c.GetBoolval() != nil && c.GetBoolval().GetBoolval())
}

// setConfigOf returns the setting a set_config(name, ...) call changes, when
// it is a guarded one given as a literal.
func setConfigOf(f *pg_query.FuncCall) (string, bool) {
	if funcName(f) != "set_config" {
		return "", false
	}
	args := f.GetArgs()
	if len(args) == 0 {
		return "", false
	}
	arg := args[0]
	if tc := arg.GetTypeCast(); tc != nil {
		arg = tc.GetArg()
	}
	name := strings.ToLower(arg.GetAConst().GetSval().GetSval())
	_, ok := guardedSettings[name]
	return name, ok
}

func lockingKind(s pg_query.LockClauseStrength) string {
	switch s {
	case pg_query.LockClauseStrength_LCS_FORKEYSHARE:
		return "FOR KEY SHARE"
	case pg_query.LockClauseStrength_LCS_FORSHARE:
		return "FOR SHARE"
	case pg_query.LockClauseStrength_LCS_FORNOKEYUPDATE:
		return "FOR NO KEY UPDATE"
	}
	return "FOR UPDATE"
}

// walk calls f on m and every message below it, depth first, until f
// returns false; it reports whether the walk went to the end (sqlext.Walk).
func walk(m protoreflect.Message, f func(protoreflect.Message) bool) bool {
	return sqlext.Walk(m, f)
}

// quoteIdent quotes name as an SQL identifier when it needs quotes.
func quoteIdent(name string) string {
	plain := name != ""
	for i, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
			plain = false
		}
	}
	if plain {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
