// Package all lists the connectors a Sluice server is built with: the one
// place that names them all. cmd/sluice and the test bed build their
// registry here, so adding a kind of peer is a line in Kinds and a package
// of its own; no flow or statement changes.
package all

import (
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/mysql"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// Kinds returns every kind of peer, in the order messages list them
// ("Sluice supports POSTGRES, CLICKHOUSE and MYSQL peers today").
func Kinds() []connectors.Kind {
	return []connectors.Kind{postgres.Kind(), clickhouse.Kind(), mysql.Kind()}
}

// Registry returns a new registry of every kind of peer. It cannot fail:
// the kinds' types differ.
func Registry() *connectors.Registry {
	r, err := connectors.NewRegistry(Kinds()...)
	if err != nil {
		panic(err) // a programming error: Kinds lists a type twice
	}
	return r
}
