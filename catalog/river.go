package catalog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// River's tables: the cluster's finite work (a partition of an initial
// load, ...) runs as River jobs (github.com/riverqueue/river), whose queue
// lives in the catalog, so that every node works it and a dead node's jobs
// are redone by the others (docs/cluster.md).
//
// River's schema is Sluice's own: its tables (river_job, river_queue,
// river_leader, river_migration, ...) are in schema sluice (RiverSchema),
// beside Sluice's, never in the catalog database's search_path, so that
// another program's River queue in the same database is neither seen nor
// touched. River's migrations run as part of Sluice's: riverVersions names,
// for a Sluice migration, the River migration version applied in the same
// transaction before its file (whose SQL may then use River's tables). A
// catalog's Sluice version thus implies its River version, and the one
// version check (SchemaVersionError) covers both: an older Sluice never
// runs against River tables a newer one migrated. A Sluice that pins a
// newer River adds a migration whose entry here takes River to that
// version.

// RiverSchema is the schema holding River's tables, for River's clients
// (river.Config.Schema).
const RiverSchema = "sluice"

// riverVersions maps a Sluice migration's version to the River migration
// version its transaction applies first (River's "main" line; 8 is the
// newest of River v0.51.2). River's migrations 4 to 6 cannot share a
// transaction (6 uses an enum value 4 adds, usable once committed), hence
// two Sluice migrations.
var riverVersions = map[int]int{15: 5, 16: 8}

// RiverVersion is the River migration version a fully migrated catalog
// has: the newest in riverVersions.
func RiverVersion() int {
	v := 0
	for _, rv := range riverVersions {
		v = max(v, rv)
	}
	return v
}

// migrateRiver applies River's migrations up to version on tx, in schema
// RiverSchema. Idempotent: versions already applied are skipped.
func migrateRiver(ctx context.Context, tx pgx.Tx, version int) error {
	m, err := rivermigrate.New(riverpgxv5.New(nil), &rivermigrate.Config{Schema: RiverSchema,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	//nolint:staticcheck // MigrateTx: River's migrations commit or roll back with Sluice's.
	if _, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{TargetVersion: version}); err != nil {
		return fmt.Errorf("river migrations up to %d: %w", version, err)
	}
	return nil
}

// RiverPool opens a connection pool of its own on the catalog database, of
// at most maxConns connections, for the node's River client (which keeps
// one listening for notifications and uses others to fetch and finish
// jobs), so that River and the flows never wait for each other's
// connections. The caller owns it and closes it.
func (s *Store) RiverPool(ctx context.Context, maxConns int32) (*pgxpool.Pool, error) {
	cfg := s.pool.Config().Copy()
	cfg.MaxConns = maxConns
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open the catalog pool for jobs: %w", err)
	}
	return pool, nil
}
