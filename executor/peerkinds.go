package executor

import (
	"context"
	"fmt"

	"github.com/sluicedb/sluice/catalog"
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

// parsePeer parses a stored peer with its kind's parser.
func (e *Executor) parsePeer(p catalog.Peer) (connectors.Peer, error) {
	kind, ok := e.cfg.Kinds.Lookup(p.Type)
	if !ok {
		return nil, fmt.Errorf("peer type %s is not known to this server (it knows %s)", p.Type, e.cfg.Kinds.Types())
	}
	peer, err := kind.Parse(p.Options)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", p.Name, err)
	}
	return peer, nil
}

// peerAs loads the peer named name from the catalog and parses it.
func (e *Executor) peerAs(ctx context.Context, name string) (connectors.Peer, error) {
	p, err := e.cfg.Store.GetPeer(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load peer %q: %w", name, err)
	}
	return e.parsePeer(p)
}
