package postgres

import (
	"context"
	"maps"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// Kind is the Postgres kind of peer (CREATE PEER ... FROM POSTGRES): a
// mirror's source or destination; sessions query it over the Postgres
// protocol themselves (Wire), so it has no federated reader.
//
// The peers one Kind parses share what it remembers of their servers
// (tlsMemo): a program makes one Kind, its registry's.
func Kind() connectors.Kind {
	memo := newTLSMemo()
	parse := func(opts map[string]string) (*PeerConfig, error) {
		c, err := ParsePeerOptions(opts)
		if err == nil {
			c.tls = memo
		}
		return c, err
	}
	return connectors.Kind{Type: "POSTGRES", Name: "Postgres", Source: true, Destination: true, StreamObjects: true, Wire: wireDialer{},
		Parse: connectors.ParseWith(parse), FormatPosition: FormatPosition}
}

var _ connectors.Peer = (*PeerConfig)(nil)

// StoredOptions implements connectors.Peer: the options as given.
func (c *PeerConfig) StoredOptions(given map[string]string) map[string]string {
	return maps.Clone(given)
}

// Check implements connectors.Peer: it reports the server's version,
// wal_level and the user's replication privilege, and warns when the peer
// cannot be a CDC source.
func (c *PeerConfig) Check(ctx context.Context, name string) (connectors.PeerCheck, error) {
	info, err := c.Inspect(ctx)
	if err != nil {
		return connectors.PeerCheck{}, err
	}
	replication := "no"
	if info.Replication {
		replication = "yes"
	}
	notices := []*sqlerr.Error{sqlerr.Notice("peer %q: PostgreSQL %s, wal_level=%s, replication privilege: %s",
		name, info.Version, info.WalLevel, replication)}
	if ok, why := info.CanBeSource(); !ok {
		notices = append(notices, sqlerr.Warning("peer %q can be a destination but not a CDC source: %s", name, why).
			WithHint("A source needs wal_level=logical (ALTER SYSTEM SET wal_level = logical, then restart) "+
				"and a user with the REPLICATION privilege."))
	}
	return connectors.PeerCheck{Version: info.Version, Notices: notices}, nil
}

// wireDialer is connectors.WireDialer for Postgres peers.
type wireDialer struct{}

var _ connectors.WireDialer = wireDialer{}

// ConnConfig implements connectors.WireDialer.
func (wireDialer) ConnConfig(options map[string]string, appName string) (*pgconn.Config, error) {
	cfg, err := ParsePeerOptions(options)
	if err != nil {
		return nil, err
	}
	return cfg.ConnConfig(appName)
}

// ConnectFailed implements connectors.WireDialer (see ConnectFailed).
func (wireDialer) ConnectFailed(cfg *pgconn.Config, err error) error { return ConnectFailed(cfg, err) }
