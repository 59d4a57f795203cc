package all_test

import (
	"testing"

	"github.com/sluicedb/sluice/connectors/all"
	"github.com/sluicedb/sluice/sqlext"
)

// TestKinds checks the kinds a server is built with, and that CREATE PEER's
// parser names each of them (sqlext.PeerType).
func TestKinds(t *testing.T) {
	r := all.Registry()
	if got := r.Types(); got != "POSTGRES, CLICKHOUSE and MYSQL" {
		t.Errorf("Types: %q", got)
	}
	for _, c := range []struct {
		typ                           sqlext.PeerType
		name                          string
		source, dest, federated, wire bool
	}{
		{sqlext.PeerPostgres, "Postgres", true, true, false, true},
		{sqlext.PeerClickHouse, "ClickHouse", false, true, true, false},
		{sqlext.PeerMySQL, "MySQL", true, false, false, false},
	} {
		k, ok := r.Lookup(string(c.typ))
		if !ok {
			t.Errorf("%s: not registered", c.typ)
			continue
		}
		if k.Name != c.name || k.Source != c.source || k.Destination != c.dest || (k.Federated != nil) != c.federated ||
			(k.Wire != nil) != c.wire {
			t.Errorf("%s: %+v", c.typ, k)
		}
	}
	for _, k := range all.Kinds() {
		stmts, err := sqlext.Parse("CREATE PEER p FROM " + k.Type)
		if err != nil {
			t.Errorf("%s: %v", k.Type, err)
			continue
		}
		if cp, ok := stmts[0].(*sqlext.CreatePeer); !ok || string(cp.Type) != k.Type {
			t.Errorf("%s: parsed as %#v", k.Type, stmts[0])
		}
	}
	for _, typ := range []sqlext.PeerType{sqlext.PeerSnowflake, sqlext.PeerBigQuery} {
		if _, ok := r.Lookup(string(typ)); ok {
			t.Errorf("%s is registered, but has no connector", typ)
		}
	}
}
