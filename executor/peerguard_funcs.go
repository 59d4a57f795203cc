package executor

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/sqlerr"
)

// A query naming a Postgres peer (peer.schema.table) runs on a connection
// whose every transaction is read-only (default_transaction_read_only, set
// at connection start and guarded: see readonly.go and peerConn). Read-only
// mode does not stop every function with effects (the replication slot
// functions, for one), so such a query may call only functions known to be
// safe, an allow-list checked before anything is sent:
//
//   - Postgres' built-in functions (OID below 16384, made by initdb) that
//     the peer marks IMMUTABLE or STABLE: by Postgres' own contract they do
//     not modify the database (deniedFunctions in readonly.go still
//     refuses the few that run SQL text or act beyond the session);
//   - a few volatile built-ins that change nothing: harmlessVolatile.
//
// Whatever the search_path, an unqualified name is allowed only if every
// function of that name on the peer, in any schema, passes; a qualified one
// if every function of that name in that schema does. A name no function
// has is left for the peer to read (a cast written as a call, a column in
// functional notation, or an error). Verdicts are asked of the peer's
// pg_proc and kept per connection, until the session next runs EXECUTE on
// a Postgres peer (which may create functions).

// harmlessVolatile are volatile built-ins that change nothing on the peer:
// they only read a clock, a random source, files' sizes, the WAL position
// or the partition tree, or wait. (Volatile because their answer may
// change within a statement, not because they write.)
var harmlessVolatile = map[string]bool{
	"random": true, "random_normal": true, "gen_random_uuid": true,
	"clock_timestamp": true, "timeofday": true,
	"pg_relation_size": true, "pg_total_relation_size": true, "pg_table_size": true,
	"pg_indexes_size": true, "pg_database_size": true, "pg_tablespace_size": true,
	"pg_current_wal_lsn": true, "pg_current_wal_flush_lsn": true, "pg_current_wal_insert_lsn": true,
	"pg_is_in_recovery": true, "pg_last_wal_receive_lsn": true, "pg_last_wal_replay_lsn": true,
	"pg_last_xact_replay_timestamp": true, "pg_partition_tree": true, "pg_partition_ancestors": true,
	"pg_sleep": true, "pg_sleep_for": true, "pg_sleep_until": true,
}

// procRow is one function of the peer's pg_proc, as the allow-list sees it.
type procRow struct {
	name, schema string
	builtin      bool // OID below 16384
	volatility   byte // provolatile: 'i', 's' or 'v'
}

// funcVerdict is the allow-list's judgement of a function name.
type funcVerdict struct {
	ok     bool
	absent bool   // no function has the name (ok, not cached)
	why    string // why not: a sentence for the error's detail
}

// judge decides whether calls of f may run in a read-only query on the
// peer, given the peer's functions of that name (rows, in any schema).
func judge(f funcRef, rows []procRow) funcVerdict {
	found := false
	for _, r := range rows {
		if r.name != f.name || f.schema != "" && r.schema != f.schema {
			continue
		}
		found = true
		qualified := r.schema + "." + r.name
		if !r.builtin {
			return funcVerdict{why: fmt.Sprintf("%s is not one of Postgres' built-in functions: it may change the peer.", qualified)}
		}
		if r.volatility == 'v' && !(harmlessVolatile[r.name] && r.schema == "pg_catalog") {
			return funcVerdict{why: fmt.Sprintf("%s is volatile: it may change the peer.", qualified)}
		}
	}
	if !found {
		return funcVerdict{ok: true, absent: true}
	}
	return funcVerdict{ok: true}
}

// funcKey is a function reference's key in a connection's verdicts.
func funcKey(f funcRef) string { return f.schema + "\x00" + f.name }

// procQuery reads the functions of the given names ($1, a text array)
// from a peer, with every name schema-qualified so that the session's
// search_path cannot change its meaning.
const procQuery = `SELECT p.proname::pg_catalog.text, n.nspname::pg_catalog.text,
       p.oid OPERATOR(pg_catalog.<) 16384::pg_catalog.oid, p.provolatile::pg_catalog.text
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
WHERE p.proname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])`

// checkCalls refuses a query on Postgres peer that calls a function the
// allow-list does not admit, before anything of the query is sent. It
// asks the peer (on its read-only connection, opened already) about names
// it has no verdict for. at maps a byte offset in the query's text to a
// position in the client's query.
func (s *session) checkCalls(ctx context.Context, peer string, plan *guardPlan, at func(int) int) error {
	if plan == nil || len(plan.calls) == 0 {
		return nil
	}
	pc, ok := s.readers[peer]
	if !ok {
		return fmt.Errorf("check the functions of a query on peer %q: no connection", peer)
	}
	if pc.funcs == nil {
		pc.funcs = make(map[string]funcVerdict)
	}
	var missing []string
	seen := map[string]bool{}
	for _, f := range plan.calls {
		if _, ok := pc.funcs[funcKey(f)]; !ok && !seen[f.name] {
			seen[f.name] = true
			missing = append(missing, f.name)
		}
	}
	var rows []procRow
	if len(missing) > 0 {
		res := pc.conn.ExecParams(ctx, procQuery, [][]byte{[]byte(textArray(missing))}, nil, nil, nil).Read()
		if res.Err != nil {
			return fmt.Errorf("check the functions of a query on peer %q: %w", peer, res.Err)
		}
		for _, r := range res.Rows {
			if len(r) != 4 || len(r[3]) != 1 {
				return fmt.Errorf("check the functions of a query on peer %q: unexpected pg_proc row", peer)
			}
			rows = append(rows, procRow{name: string(r[0]), schema: string(r[1]), builtin: string(r[2]) == "t", volatility: r[3][0]})
		}
	}
	for _, f := range plan.calls {
		v, ok := pc.funcs[funcKey(f)]
		if !ok {
			v = judge(f, rows)
			if !v.absent {
				pc.funcs[funcKey(f)] = v
			}
		}
		if !v.ok {
			return sqlerr.New(pgerrcode.InsufficientPrivilege,
				"function %s is not allowed in a query that reads from peer %q", f.display(), peer).
				WithPosition(positionAt(at, f.location)).
				WithDetail("%s A query naming a peer runs read-only and may call only built-in functions that are "+
					"immutable or stable, and a few volatile ones that change nothing (random(), clock_timestamp(), ...). "+
					"Nothing was sent to the peer.", v.why).
				WithHint("To run it on the peer anyway, use EXECUTE %s('...').", quoteIdent(peer))
		}
	}
	return nil
}

// forgetFunctions drops every verdict of the session's read-only peer
// connections: EXECUTE may have created or replaced functions.
func (s *session) forgetFunctions() {
	for _, pc := range s.readers {
		pc.funcs = nil
	}
}

// textArray renders names as a Postgres text array literal.
func textArray(names []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
