package connectors

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicedb/sluice/sqlerr"
)

// Kind describes one kind of peer, as a connector serves it: what CREATE
// PEER ... FROM <Type> accepts and checks, and what such a peer can do. A
// connector returns its Kind from a function (postgres.Kind,
// clickhouse.Kind); cmd/sluice puts them in a Registry. A value, safe for
// concurrent use.
type Kind struct {
	// Type is the peer type as CREATE PEER names it and the catalog stores
	// it (catalog.Peer.Type), e.g. "CLICKHOUSE".
	Type string
	// Name is how messages name the kind, e.g. "ClickHouse".
	Name string
	// Parse validates a peer's options (keys lower-case) and returns the
	// peer; a bad option is an *OptionError naming the key. It does no I/O.
	Parse func(opts map[string]string) (Peer, error)
	// Source and Destination tell whether a peer of this kind can be a
	// mirror's source and its destination.
	Source, Destination bool
	// StreamObjects tells whether a source of this kind makes named
	// objects for each mirror (Postgres: a publication and a replication
	// slot), which the mirror options publication_name and
	// replication_slot_name name; without them those options are refused.
	StreamObjects bool
	// Federated answers client sessions' queries on peers of this kind; nil
	// when sessions reach such peers otherwise (a Postgres peer, over the
	// Postgres protocol).
	Federated FederatedReader
	// Wire connects client sessions to peers of this kind over Postgres'
	// protocol; nil when they cannot be reached so.
	Wire WireDialer
	// FormatPosition renders a position of a source of this kind for
	// messages ("0/16B3748" for Postgres); nil shows it as it is.
	FormatPosition func(Position) string
}

// Peer is a peer whose options Kind.Parse accepted.
type Peer interface {
	// StoredOptions returns the options to store in the catalog: given,
	// the options the peer was parsed from, plus the defaults the peers
	// view should show. It does not change given; the caller owns the
	// result.
	StoredOptions(given map[string]string) map[string]string
	// Check connects to the peer, named name, and tells what CREATE PEER
	// reports about it. A *sqlerr.Error is the user's error as it is; any
	// other error means the peer could not be reached (see Hinter).
	Check(ctx context.Context, name string) (PeerCheck, error)
}

// ParseWith adapts a connector's option parser to Kind.Parse.
func ParseWith[P Peer](parse func(opts map[string]string) (P, error)) func(opts map[string]string) (Peer, error) {
	return func(opts map[string]string) (Peer, error) {
		p, err := parse(opts)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
}

// PeerCheck is what CREATE PEER learned about a peer.
type PeerCheck struct {
	// Version is the server's version, for the log.
	Version string
	// Notices are sent to the client once the peer is stored (notices and
	// warnings).
	Notices []*sqlerr.Error
}

// Registry holds the kinds of peers a Sluice server knows, by Type. It is
// built once (cmd/sluice) and then only read: safe for concurrent use.
type Registry struct {
	kinds map[string]*Kind
	types []string // in the order given
}

// NewRegistry returns a registry of kinds. A kind without a Type or Parse,
// or two kinds of the same Type, is an error.
func NewRegistry(kinds ...Kind) (*Registry, error) {
	r := &Registry{kinds: make(map[string]*Kind, len(kinds))}
	for i := range kinds {
		k := kinds[i]
		switch {
		case k.Type == "" || k.Parse == nil:
			return nil, fmt.Errorf("connectors: kind %d (%q) has no type or no option parser", i, k.Type)
		case r.kinds[k.Type] != nil:
			return nil, fmt.Errorf("connectors: kind %q registered twice", k.Type)
		}
		r.kinds[k.Type] = &k
		r.types = append(r.types, k.Type)
	}
	return r, nil
}

// Lookup returns the kind of peers of type peerType, and whether there is
// one. The caller must not change the kind.
func (r *Registry) Lookup(peerType string) (*Kind, bool) {
	k, ok := r.kinds[peerType]
	return k, ok
}

// Types returns the registered peer types in the order given, joined for a
// message: "POSTGRES and CLICKHOUSE".
func (r *Registry) Types() string {
	switch n := len(r.types); n {
	case 0:
		return "no"
	case 1:
		return r.types[0]
	default:
		return strings.Join(r.types[:n-1], ", ") + " and " + r.types[n-1]
	}
}
