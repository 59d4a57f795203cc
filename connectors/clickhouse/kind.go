package clickhouse

import (
	"context"
	"maps"
	"strconv"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// Kind is the ClickHouse kind of peer (CREATE PEER ... FROM CLICKHOUSE): a
// mirror's destination, and a peer that client sessions query through
// FederatedReader.
func Kind() connectors.Kind {
	return connectors.Kind{Type: "CLICKHOUSE", Name: "ClickHouse", Destination: true, Federated: FederatedReader{},
		Parse: func(opts map[string]string) (connectors.Peer, error) {
			cfg, err := ParsePeerOptions(opts)
			if err != nil {
				return nil, err
			}
			return &peer{cfg: cfg, opts: maps.Clone(opts)}, nil
		}}
}

// peer is a ClickHouse peer being created.
type peer struct {
	cfg  *PeerConfig
	opts map[string]string
}

// Options implements connectors.Peer: the options as given, with the
// defaults of port, user and database, so that the peers view shows what
// is used.
func (p *peer) Options() map[string]string {
	opts := maps.Clone(p.opts)
	for k, v := range map[string]string{"port": strconv.Itoa(p.cfg.Port), "user": p.cfg.User, "database": p.cfg.Database} {
		if _, ok := opts[k]; !ok {
			opts[k] = v
		}
	}
	return opts
}

// Check implements connectors.Peer: it reports the server's version, and
// refuses a peer whose database does not exist.
func (p *peer) Check(ctx context.Context, name string) (connectors.PeerCheck, error) {
	info, err := p.cfg.Inspect(ctx)
	if err != nil {
		return connectors.PeerCheck{}, err
	}
	if !info.DatabaseExists {
		return connectors.PeerCheck{}, sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection,
			"create peer %q: database %q does not exist on the ClickHouse server at %s", name, p.cfg.Database, p.cfg.Addr()).
			WithHint("Create it in ClickHouse first (CREATE DATABASE %s); nothing was stored.", p.cfg.Database)
	}
	return connectors.PeerCheck{Version: info.Version, Notices: []*sqlerr.Error{sqlerr.Notice("peer %q: ClickHouse %s, database %s",
		name, info.Version, p.cfg.Database)}}, nil
}
