package executor

import (
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/sqlext"
)

// The kinds of peers whose connector answers federated reads itself, by
// peer type (catalog.Peer.Type): the one place where the session's
// statements learn which connector serves a peer. Postgres peers are not
// here: sessions read from them on their own connections (passthrough.go).

// federatedKind is a peer type whose connector reads for sessions.
type federatedKind struct {
	peerType string // catalog.Peer.Type
	name     string // as messages name the kind, e.g. "ClickHouse"
	reader   connectors.FederatedReader
}

// federatedKinds are the kinds of peers with a federated reader.
var federatedKinds = map[string]federatedKind{
	string(sqlext.PeerClickHouse): {peerType: string(sqlext.PeerClickHouse), name: "ClickHouse",
		reader: clickhouse.FederatedReader{}},
}

// federatedKindOf returns the federated reader of peers of type peerType,
// and whether there is one.
func federatedKindOf(peerType string) (federatedKind, bool) {
	k, ok := federatedKinds[peerType]
	return k, ok
}
