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
		Parse: connectors.ParseWith(ParsePeerOptions)}
}

var _ connectors.Peer = (*PeerConfig)(nil)

// StoredOptions implements connectors.Peer: the options as given, with the
// defaults of port, user and database, so that the peers view shows what
// is used.
func (c *PeerConfig) StoredOptions(given map[string]string) map[string]string {
	opts := make(map[string]string, len(given)+3)
	maps.Copy(opts, given)
	for k, v := range map[string]string{"port": strconv.Itoa(c.Port), "user": c.User, "database": c.Database} {
		if _, ok := opts[k]; !ok {
			opts[k] = v
		}
	}
	return opts
}

// Check implements connectors.Peer: it reports the server's version, and
// refuses a peer whose database does not exist.
func (c *PeerConfig) Check(ctx context.Context, name string) (connectors.PeerCheck, error) {
	info, err := c.Inspect(ctx)
	if err != nil {
		return connectors.PeerCheck{}, err
	}
	if !info.DatabaseExists {
		return connectors.PeerCheck{}, sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection,
			"create peer %q: database %q does not exist on the ClickHouse server at %s", name, c.Database, c.Addr()).
			WithHint("Create it in ClickHouse first (CREATE DATABASE %s); nothing was stored.", c.Database)
	}
	return connectors.PeerCheck{Version: info.Version, Notices: []*sqlerr.Error{sqlerr.Notice("peer %q: ClickHouse %s, database %s",
		name, info.Version, c.Database)}}, nil
}
