package executor

import (
	"github.com/sluicedb/sluice/connectors"
)

// The kinds of peers whose connector answers federated reads itself:
// those of Config.Kinds with a connectors.FederatedReader. Postgres peers
// are not among them: sessions read from them on their own connections
// (passthrough.go).

// federatedKind is a peer type whose connector reads for sessions.
type federatedKind struct {
	peerType string // catalog.Peer.Type
	name     string // as messages name the kind, e.g. "ClickHouse"
	reader   connectors.FederatedReader
}

// federatedKindOf returns the federated reader of peers of type peerType,
// and whether there is one.
func (e *Executor) federatedKindOf(peerType string) (federatedKind, bool) {
	k, ok := e.cfg.Kinds.Lookup(peerType)
	if !ok || k.Federated == nil {
		return federatedKind{}, false
	}
	return federatedKind{peerType: k.Type, name: k.Name, reader: k.Federated}, true
}
