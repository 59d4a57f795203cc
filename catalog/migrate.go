package catalog

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var embeddedMigrations embed.FS

// migrationLockKey is the session advisory lock key that serialises catalog
// starts on one database: the first 8 bytes of "sluice.c" read as a
// big-endian int64. Other programs sharing the database must not use it.
const migrationLockKey int64 = 0x736c756963652e63

// SchemaVersionError is returned by Open when the catalog was migrated by a
// newer sluice than the running one: its schema version is above the newest
// migration this binary embeds. Nothing is changed in the catalog.
type SchemaVersionError struct {
	Catalog   int // version recorded in sluice.schema_migrations
	Supported int // newest migration embedded in this binary
}

// Error implements error.
func (e *SchemaVersionError) Error() string {
	return fmt.Sprintf("catalog schema version %d is newer than this sluice supports (%d): upgrade sluice",
		e.Catalog, e.Supported)
}

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the files NNNN_name.sql under dir in fsys, sorted by
// version. Versions must start at 1 and be contiguous, so that a misnumbered
// file is caught by the tests rather than in production.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("read migrations: %s: name must be NNNN_description.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migrations: %w", err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("read migrations: %s: expected version %d", m.name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("read migrations: none found")
	}
	return ms, nil
}

// migrate brings the catalog on conn up to the newest of ms. The caller must
// hold the migration lock. Each pending migration runs in its own
// transaction together with the insertion of its version row, so a failure
// leaves the catalog at the last fully applied version. Idempotent.
func migrate(ctx context.Context, conn *pgx.Conn, ms []migration) error {
	const bootstrap = `
CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.schema_migrations (
    version    int PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)`
	if _, err := conn.Exec(ctx, bootstrap); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM sluice.schema_migrations`).Scan(&current)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	newest := ms[len(ms)-1].version
	if current > newest {
		return &SchemaVersionError{Catalog: current, Supported: newest}
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		if err := applyMigration(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration applies m in one transaction with its version row, and
// first, in that transaction, the River migrations that go with it
// (river.go).
func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if rv, ok := riverVersions[m.version]; ok {
			if err := migrateRiver(ctx, tx, rv); err != nil {
				return err
			}
		}
		// No arguments: the simple protocol runs a multi-statement file.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sluice.schema_migrations (version) VALUES ($1)`, m.version)
		return err
	})
	if err != nil {
		return fmt.Errorf("apply migration %s: %w", m.name, err)
	}
	return nil
}
