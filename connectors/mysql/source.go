package mysql

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/sluicedb/sluice/connectors"
)

// The MySQL side of connectors.Source. Describe, the checks and the
// initial load's snapshot are here and in describe.go, checks.go and
// snapshot.go; the binlog stream in stream.go and binlog_*.go.

var (
	_ connectors.SourcePeer = (*PeerConfig)(nil)
	_ connectors.Source     = (*Source)(nil)
)

// DefaultSchema implements connectors.SourcePeer: the peer's database
// option ("" when it has none).
func (c *PeerConfig) DefaultSchema() string { return c.Database }

// OpenSource implements connectors.SourcePeer: it connects (Connect) and
// learns the server's flavor when the peer does not set it. appName is
// not sent (MySQL has no application name; connections say program_name
// sluice).
func (c *PeerConfig) OpenSource(ctx context.Context, appName string) (connectors.Source, error) {
	conn, err := c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	flavor := c.Flavor
	if flavor == "" {
		flavor = detectFlavor(conn.GetServerVersion())
	}
	return &Source{peer: c, conn: conn, flavor: flavor}, nil
}

// Source is a connection to a MySQL or MariaDB mirror source. Not safe for
// concurrent use; readers and snapshots have connections of their own.
type Source struct {
	peer   *PeerConfig
	conn   *client.Conn
	flavor string

	// mu guards held, the snapshot kept open for summaries (summary.go),
	// and serializes the queries on its connection.
	mu   sync.Mutex
	held *heldSnapshot
}

// Prepare implements connectors.Source: a MySQL source needs nothing made
// per mirror (the binlog carries every table). Idempotent.
func (s *Source) Prepare(context.Context, connectors.StreamSpec, []connectors.TableName, bool) error {
	return nil
}

// Teardown implements connectors.Source: a MySQL source keeps nothing for
// a mirror. Idempotent.
func (s *Source) Teardown(context.Context, connectors.StreamSpec) error { return nil }

// Close implements connectors.Source; a snapshot held for summaries ends
// with it.
func (s *Source) Close(context.Context) error {
	s.release("")
	if err := s.conn.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close MySQL connection: %w", err)
	}
	return nil
}
