package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// The Postgres destination: connectors.Destination and its abilities over
// the package's destination functions (meta.go, tableops.go, owned.go,
// swap*.go, truncate.go, apply*.go). The base methods are here; loading in
// destination_load.go; following schema changes, emptying and restoring in
// destination_alter.go; shadow tables and swaps in destination_swap.go.

var (
	_ connectors.DestinationPeer     = (*PeerConfig)(nil)
	_ connectors.Destination         = (*Destination)(nil)
	_ connectors.LoadFinisher        = (*Destination)(nil)
	_ connectors.IndexCreator        = (*Destination)(nil)
	_ connectors.TablePlanner        = (*Destination)(nil)
	_ connectors.SchemaFollower      = (*Destination)(nil)
	_ connectors.ShadowSwapper       = (*Destination)(nil)
	_ connectors.RetiredDropper      = (*Destination)(nil)
	_ connectors.ConstraintValidator = (*Destination)(nil)
	_ connectors.Analyzer            = (*Destination)(nil)
	_ connectors.TablePositions      = (*Destination)(nil)
	_ connectors.Emptier             = (*Destination)(nil)
	_ connectors.Fencer              = (*Destination)(nil)
	_ connectors.Applier             = (*Applier)(nil)
	_ connectors.Loader              = (*Loader)(nil)
)

// teardownLockTimeout bounds how long Teardown waits for a lock on a table
// it drops: a session holding one must not make DROP MIRROR wait forever.
const teardownLockTimeout = 10 * time.Second

// OpenDestination implements connectors.DestinationPeer: it connects to the
// peer (ConnectSQL) as appName, for mirror, whose metadata lives in the
// peer's metadata_schema (DefaultMetadataSchema when not set). The caller
// closes the Destination.
func (c *PeerConfig) OpenDestination(ctx context.Context, appName, mirror string) (connectors.Destination, error) {
	conn, err := c.ConnectSQL(ctx, appName)
	if err != nil {
		return nil, err
	}
	return newDestination(c, conn, appName, mirror), nil
}

func newDestination(peer *PeerConfig, conn *pgx.Conn, appName, mirror string) *Destination {
	meta := peer.MetadataSchema
	if meta == "" {
		meta = DefaultMetadataSchema
	}
	return &Destination{peer: peer, conn: conn, appName: appName, meta: meta, mirror: mirror}
}

// Destination is a Postgres peer as one mirror's destination
// (connectors.Destination), on one connection. Every method that reads or
// writes the mirror's metadata makes the metadata schema first if this
// Destination has not yet (EnsureMetadata). Not safe for concurrent use.
type Destination struct {
	peer    *PeerConfig
	conn    *pgx.Conn
	appName string
	meta    string // the metadata schema, never ""
	mirror  string
	hasMeta bool // EnsureMetadata ran on conn
	// epoch is the lease epoch Fence claimed the destination with (0:
	// none), which the appliers made after it check.
	epoch int64
}

// ensureMeta runs EnsureMetadata once per Destination.
func (d *Destination) ensureMeta(ctx context.Context) error {
	if d.hasMeta {
		return nil
	}
	if err := EnsureMetadata(ctx, d.conn, d.meta); err != nil {
		return err
	}
	d.hasMeta = true
	return nil
}

// DefaultSchema implements connectors.Destination: "public".
func (d *Destination) DefaultSchema() string { return "public" }

// Applied implements connectors.Destination: the mirror's position in the
// metadata (LastPosition), "" when none.
func (d *Destination) Applied(ctx context.Context) (connectors.Position, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return "", err
	}
	pos, _, err := LastPosition(ctx, d.conn, d.meta, d.mirror)
	return pos, err
}

// TableExists implements connectors.Destination (see TableExists: a name
// another kind of relation takes is an error).
func (d *Destination) TableExists(ctx context.Context, table connectors.TableName) (bool, error) {
	return TableExists(ctx, d.conn, table)
}

// CreateTable implements connectors.Destination: unless d.Dest exists, it
// creates it and the enum types it needs in one transaction (CreateTable),
// with the soft-delete and synced-at columns, without its primary key,
// which FinishLoad adds after the load (LoadFinisher). When another
// session creates it at the same time (CREATE MIRROR and the mirror's
// flow, started by another node as soon as the mirror is recorded), the
// loser finds the winner's table.
func (d *Destination) CreateTable(ctx context.Context, t connectors.DestTable) error {
	exists, err := TableExists(ctx, d.conn, t.Dest)
	if err != nil || exists {
		return err
	}
	err = pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		if err := CreateTable(ctx, tx, t.Dest, t.Schema, t.SoftDeleteColumn, t.SyncedAtColumn); err != nil {
			return fmt.Errorf("create destination table %s: %w", t.Dest, err)
		}
		return nil
	})
	if err != nil && lostCreateRace(err) {
		if exists, xerr := TableExists(ctx, d.conn, t.Dest); xerr == nil && exists {
			return nil
		}
	}
	return err
}

// Loaded implements connectors.Destination (DonePartitions).
func (d *Destination) Loaded(ctx context.Context, table connectors.TableName) (map[int]int64, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return nil, err
	}
	return DonePartitions(ctx, d.conn, d.meta, d.mirror, table)
}

// ForgetLoad implements connectors.Destination: ClearTable, or for the zero
// name ForgetMirror, which also forgets the mirror's position and table
// resync states (and keeps its fencing epoch). Once the Destination is
// claimed, it runs in a transaction that checks the epoch first
// (checkEpoch): a stale node forgets nothing, and its error is a
// *connectors.FencedError.
func (d *Destination) ForgetLoad(ctx context.Context, table connectors.TableName) error {
	if err := d.ensureMeta(ctx); err != nil {
		return err
	}
	if d.epoch == 0 {
		if table == (connectors.TableName{}) {
			return ForgetMirror(ctx, d.conn, d.meta, d.mirror)
		}
		return ClearTable(ctx, d.conn, d.meta, d.mirror, table)
	}
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		if err := d.checkEpoch(ctx, tx); err != nil {
			return err
		}
		if table == (connectors.TableName{}) {
			return ForgetMirror(ctx, tx, d.meta, d.mirror)
		}
		return ClearTable(ctx, tx, d.meta, d.mirror, table)
	})
}

// OpenLoader implements connectors.Destination: a Loader on a new
// connection to the peer, under the Destination's application name.
func (d *Destination) OpenLoader(ctx context.Context) (connectors.Loader, error) {
	conn, err := d.peer.ConnectSQL(ctx, d.appName)
	if err != nil {
		return nil, err
	}
	return &Loader{conn: conn, meta: d.meta, mirror: d.mirror}, nil
}

// NewApplier implements connectors.Destination: an *Applier (NewApplier)
// on the Destination's connection. The Destination's other methods must
// not be used while the applier has a transaction open.
func (d *Destination) NewApplier(ctx context.Context, tables []connectors.DestTable) (connectors.Applier, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return nil, err
	}
	a, err := NewApplier(ctx, d.conn, d.meta, d.mirror, tables)
	if err != nil {
		return nil, err
	}
	a.epoch = d.epoch
	return a, nil
}

// Teardown implements connectors.Destination: one transaction whose
// statements wait at most teardownLockTimeout for a lock runs ClearMirror,
// DropAllOwned (only the tables recorded as Sluice's own, by OID), then
// DropTables(drop), without CASCADE (a view on one of them makes it fail:
// see Dependents). The transaction stays open, with its locks, until the
// Pending is committed or aborted. Idempotent.
func (d *Destination) Teardown(ctx context.Context, drop []connectors.TableName) (connectors.Pending, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return connectors.Pending{}, err
	}
	tx, err := d.conn.Begin(ctx)
	if err != nil {
		return connectors.Pending{}, fmt.Errorf("begin on the destination: %w", err)
	}
	err = func() error {
		if err := SetLockTimeout(ctx, tx, teardownLockTimeout); err != nil {
			return err
		}
		if err := ClearMirror(ctx, tx, d.meta, d.mirror); err != nil {
			return err
		}
		if err := DropAllOwned(ctx, tx, d.meta, d.mirror); err != nil {
			return err
		}
		if err := dropRetiredAll(ctx, tx, d.meta, d.mirror); err != nil {
			return err
		}
		if err := DropTables(ctx, tx, drop); err != nil {
			return fmt.Errorf("drop destination tables %s: %w", connectors.JoinNames(drop), err)
		}
		return nil
	}()
	abort := func() { _ = tx.Rollback(context.Background()) }
	if err != nil {
		abort()
		return connectors.Pending{}, err
	}
	return connectors.Pending{Commit: tx.Commit, Abort: abort}, nil
}

// Dependents implements connectors.Destination (Dependents, each rendered
// by Dependent.String).
func (d *Destination) Dependents(ctx context.Context, tables []connectors.TableName) ([]string, error) {
	deps, err := Dependents(ctx, d.conn, tables)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(deps))
	for i, x := range deps {
		out[i] = x.String()
	}
	return out, nil
}

// Close implements connectors.Destination: it closes the connection (and
// with it an applier's).
func (d *Destination) Close(ctx context.Context) error { return d.conn.Close(ctx) }

// PrepareUpsert implements connectors.LoadFinisher: EnsurePrimaryKey,
// with the memory of an index build (withBuildMemory); once the
// Destination is claimed, committed only under its epoch (fencedBuild).
func (d *Destination) PrepareUpsert(ctx context.Context, t connectors.DestTable) error {
	return d.withBuildMemory(ctx, func() error {
		return d.fencedBuild(ctx, func(db queryExecer) error { return EnsurePrimaryKey(ctx, db, t.Dest, t.Schema) })
	})
}

// FinishLoad implements connectors.LoadFinisher. When t.Dest is a shadow
// table of live, it gets live's indexes (BuildShadowIndexes, when live
// exists), named so that the swap renames them back; then, in any case,
// its primary key (EnsurePrimaryKey). The indexes are built with the
// memory of withBuildMemory. Idempotent. A shadow's statistics are
// collected after its swap (Analyze): ANALYZE of 3M rows took 0.2-0.3 s
// that the swap, and the resync's end, waited for. Once the Destination
// is claimed, each index and the key commit only under its epoch
// (fencedBuild): a stale node's build is a *connectors.FencedError and
// rolls back.
func (d *Destination) FinishLoad(ctx context.Context, t connectors.DestTable, live connectors.TableName) error {
	return d.withBuildMemory(ctx, func() error { return d.finishLoad(ctx, t, live) })
}

func (d *Destination) finishLoad(ctx context.Context, t connectors.DestTable, live connectors.TableName) error {
	if t.Dest != live {
		exists, err := TableExists(ctx, d.conn, live)
		if err != nil {
			return err
		}
		if exists {
			if err := d.buildShadowIndexes(ctx, live, t.Dest); err != nil {
				return err
			}
		}
	}
	return d.fencedBuild(ctx, func(db queryExecer) error { return EnsurePrimaryKey(ctx, db, t.Dest, t.Schema) })
}

// CreateIndexes implements connectors.IndexCreator (CreateIndexes), with
// the memory of an index build (withBuildMemory). Once the Destination is
// claimed, the indexes commit together, only under its epoch (fencedBuild).
func (d *Destination) CreateIndexes(ctx context.Context, dest connectors.TableName, stmts []string) error {
	return d.withBuildMemory(ctx, func() error {
		return d.fencedBuild(ctx, func(db queryExecer) error { return CreateIndexes(ctx, db, dest, stmts) })
	})
}

// CreateForeignKeys implements connectors.IndexCreator (CreateForeignKeys).
// Once the Destination is claimed, they are added in a transaction that
// checks its epoch first (fencedWrite: a foreign key locks the table it
// references, so the metadata row is taken first, as an applier takes it).
func (d *Destination) CreateForeignKeys(ctx context.Context, dest connectors.TableName, stmts []string) error {
	return d.fencedWrite(ctx, func(db Execer) error { return CreateForeignKeys(ctx, db, dest, stmts) })
}

// PlanTable implements connectors.TablePlanner: a Postgres destination
// table has the source's columns and types, and its generated columns with
// the same expressions (CreateTableDDL), so nothing is refused and there
// is nothing to tell.
func (d *Destination) PlanTable(connectors.DestTable) ([]string, error) { return nil, nil }

// ValidateConstraints implements connectors.ConstraintValidator: the
// checks are the VALIDATE CONSTRAINT statements of SwapReport.Validate
// (ValidateForeignKeys).
func (d *Destination) ValidateConstraints(ctx context.Context, checks []string, failed func(check string, err error) error) error {
	return ValidateForeignKeys(ctx, d.conn, checks, failed)
}

// Analyze implements connectors.Analyzer: ANALYZE of each table, which
// takes a lock that lets readers and writers on.
func (d *Destination) Analyze(ctx context.Context, tables []connectors.TableName, failed func(connectors.TableName, error) error) error {
	for _, t := range tables {
		if err := AnalyzeTable(ctx, d.conn, t); err != nil {
			if ferr := failed(t, err); ferr != nil {
				return ferr
			}
		}
	}
	return nil
}

// TableStates implements connectors.TablePositions (TableStates).
func (d *Destination) TableStates(ctx context.Context) (map[connectors.TableName]connectors.TableState, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return nil, err
	}
	return TableStates(ctx, d.conn, d.meta, d.mirror)
}

// PutTableState implements connectors.TablePositions (PutTableState).
func (d *Destination) PutTableState(ctx context.Context, st connectors.TableState) error {
	if err := d.ensureMeta(ctx); err != nil {
		return err
	}
	return d.fencedWrite(ctx, func(db Execer) error { return PutTableState(ctx, db, d.meta, d.mirror, st) })
}

// DeleteTableState implements connectors.TablePositions (DeleteTableState).
func (d *Destination) DeleteTableState(ctx context.Context, table connectors.TableName) error {
	if err := d.ensureMeta(ctx); err != nil {
		return err
	}
	return d.fencedWrite(ctx, func(db Execer) error { return DeleteTableState(ctx, db, d.meta, d.mirror, table) })
}
