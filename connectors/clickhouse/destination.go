package clickhouse

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// A ClickHouse peer as a mirror's destination (connectors.Destination) and
// its abilities. The methods wrap the package's functions: metadata
// (meta.go), tables (ddl.go), the initial load (destination_load.go,
// write.go), the applier (apply.go), schema following and checks
// (destination_table.go, alter.go) and shadow-and-swap
// (destination_swap.go, owned.go, swap.go).
var (
	_ connectors.DestinationPeer = (*PeerConfig)(nil)
	_ connectors.Destination     = (*Destination)(nil)
	_ connectors.TablePlanner    = (*Destination)(nil)
	_ connectors.SortingKeys     = (*Destination)(nil)
	_ connectors.SchemaFollower  = (*Destination)(nil)
	_ connectors.TableChecker    = (*Destination)(nil)
	_ connectors.ShadowSwapper   = (*Destination)(nil)
	_ connectors.VersionedRows   = (*Destination)(nil)
	_ connectors.Fencer          = (*Destination)(nil)
	_ connectors.Loader          = (*Loader)(nil)
	_ connectors.NullKeyReporter = (*Loader)(nil)
)

// Destination is a connection to a ClickHouse peer's database as one
// mirror's destination. Metadata lives in the peer's database (meta.go).
// Not safe for concurrent use, except OpenLoader.
type Destination struct {
	cfg    *PeerConfig
	conn   driver.Conn
	info   ServerInfo
	mirror string
	// metaReady: EnsureMetadata ran on this connection.
	metaReady bool
	// epoch is the lease epoch Fence claimed the mirror with (0: none),
	// which the appliers made after it check.
	epoch int64
}

// OpenDestination implements connectors.DestinationPeer: it inspects the
// server (a peer whose database does not exist is an error) and connects
// to the peer's database for mirror. appName is not sent: the native
// protocol's client name is always "sluice". The caller closes the
// Destination.
func (c *PeerConfig) OpenDestination(ctx context.Context, appName, mirror string) (connectors.Destination, error) {
	if mirror == "" {
		return nil, fmt.Errorf("open destination: mirror name is empty")
	}
	info, err := c.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	if !info.DatabaseExists {
		return nil, fmt.Errorf("database %q does not exist on the ClickHouse server at %s", c.Database, c.Addr())
	}
	conn, err := c.Open(ctx)
	if err != nil {
		return nil, err
	}
	return &Destination{cfg: c, conn: conn, info: info, mirror: mirror}, nil
}

// ServerInfo returns what OpenDestination learnt of the server.
func (d *Destination) ServerInfo() ServerInfo { return d.info }

// DefaultSchema is the peer's database: destination tables named without
// a database are in it.
func (d *Destination) DefaultSchema() string { return d.cfg.Database }

// ensureMeta runs EnsureMetadata once per Destination.
func (d *Destination) ensureMeta(ctx context.Context) error {
	if d.metaReady {
		return nil
	}
	if err := EnsureMetadata(ctx, d.conn, d.cfg.Database); err != nil {
		return err
	}
	d.metaReady = true
	return nil
}

// Applied makes the metadata tables if missing and returns the mirror's
// recorded position ("" when none; see LastPosition).
func (d *Destination) Applied(ctx context.Context) (connectors.Position, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return "", err
	}
	pos, _, err := LastPosition(ctx, d.conn, d.cfg.Database, d.mirror)
	return pos, err
}

// TableExists reports whether table (Schema is the database) exists. It
// only reads.
func (d *Destination) TableExists(ctx context.Context, table connectors.TableName) (bool, error) {
	return TableExists(ctx, d.conn, table)
}

// tableOptions are the ClickHouse table options of d.
func tableOptions(d connectors.DestTable) TableOptions {
	return TableOptions{OrderBy: d.OrderBy, DeletedColumn: d.SoftDeleteColumn, SyncedAtColumn: d.SyncedAtColumn}
}

// CreateTable creates d.Dest for d (CreateTable, with d's sorting key and
// column names) unless a table of that name exists. Idempotent.
func (d *Destination) CreateTable(ctx context.Context, t connectors.DestTable) error {
	return CreateTable(ctx, d.conn, t.Dest, t.Schema, d.info, tableOptions(t))
}

// Loaded returns the partitions of source table table's load recorded
// done, with their rows. It makes the metadata tables if missing, and
// otherwise only reads.
func (d *Destination) Loaded(ctx context.Context, table connectors.TableName) (map[int]int64, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return nil, err
	}
	return DonePartitions(ctx, d.conn, d.cfg.Database, d.mirror, table)
}

// ForgetLoad forgets the partitions recorded done for source table table
// (ClearTable). For the zero name it forgets everything recorded for the
// mirror (ClearMirror): its partitions and also its position, as a full
// resync's setup does; the epochs that claimed it stay (a stale node stays
// fenced). Idempotent.
//
// Once the Destination is claimed, it first checks that its epoch is still
// the highest (checkEpoch): a stale node's is a *connectors.FencedError
// and forgets nothing. ClickHouse has no transactions, so a claim that
// lands in the round trip between the check and the delete lets one stale
// ForgetLoad through. What it can forget is bounded: the positions it
// deletes are those of its own epoch and earlier ones (clearMirror), never
// the new owner's, which its claim recorded again under its epoch; and
// the partitions it forgets are loaded again should the new owner need
// them (a full resync's setup, a table resync's copy: steps the new owner
// runs again from the catalog's record, forgetting the same), where they
// converge (same rows, same version).
func (d *Destination) ForgetLoad(ctx context.Context, table connectors.TableName) error {
	if err := d.ensureMeta(ctx); err != nil {
		return err
	}
	if err := d.checkEpoch(ctx); err != nil {
		return err
	}
	if table == (connectors.TableName{}) {
		return clearMirror(ctx, d.conn, d.cfg.Database, d.mirror, d.epoch)
	}
	return ClearTable(ctx, d.conn, d.cfg.Database, d.mirror, table)
}

// NewApplier returns an applier of the mirror's changes to tables on the
// Destination's connection (NewApplier; each table's sorting key is its
// OrderBy). The applier uses the connection until the flow ends.
func (d *Destination) NewApplier(ctx context.Context, tables []connectors.DestTable) (connectors.Applier, error) {
	a, err := NewApplier(ctx, d.conn, d.info, d.cfg.Database, d.mirror, tables, nil)
	if err != nil {
		return nil, err
	}
	a.epoch = d.epoch
	return a, nil
}

// Teardown checks the metadata can be reached and returns the work, done
// by Commit: forget the mirror's metadata, drop the tables recorded and
// marked as Sluice's own for it, and drop the tables of drop. ClickHouse
// has no transactions: each statement is idempotent, so a Commit cut off
// is finished by running it again. Abort does nothing.
func (d *Destination) Teardown(ctx context.Context, drop []connectors.TableName) (connectors.Pending, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return connectors.Pending{}, err
	}
	commit := func(ctx context.Context) error {
		if err := ClearMirror(ctx, d.conn, d.cfg.Database, d.mirror); err != nil {
			return err
		}
		if err := ClearEpoch(ctx, d.conn, d.cfg.Database, d.mirror); err != nil {
			return err
		}
		if err := DropAllOwned(ctx, d.conn, d.cfg.Database, d.mirror); err != nil {
			return err
		}
		for _, t := range drop {
			if err := DropTable(ctx, d.conn, t); err != nil {
				return err
			}
		}
		return nil
	}
	return connectors.Pending{Commit: commit, Abort: func() {}}, nil
}

// Dependents lists the materialized views outside tables that read from
// one of them (Dependents). It only reads.
func (d *Destination) Dependents(ctx context.Context, tables []connectors.TableName) ([]string, error) {
	return Dependents(ctx, d.conn, tables)
}

// Close closes the connection (and an applier's use of it).
func (d *Destination) Close(ctx context.Context) error { return d.conn.Close() }

// VersionsRows implements connectors.VersionedRows: rows carry the source
// commit position as their ReplacingMergeTree version.
func (d *Destination) VersionsRows() {}
