package catalog

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Hooks into unexported code for the external tests in catalog_test.go,
// which must live in package catalog_test because the test bed imports
// catalog.

// KeyCheckSetting is keyCheckSetting.
const KeyCheckSetting = keyCheckSetting

// MigrationVersions returns the versions loadMigrations finds under dir.
func MigrationVersions(fsys fs.FS, dir string) ([]int, error) {
	ms, err := loadMigrations(fsys, dir)
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.version)
	}
	return vs, err
}

// EmbeddedMigrations returns the versions and names embedded in the binary.
func EmbeddedMigrations() (versions []int, names []string, err error) {
	ms, err := loadMigrations(embeddedMigrations, "migrations")
	for _, m := range ms {
		versions = append(versions, m.version)
		names = append(names, m.name)
	}
	return versions, names, err
}

// MigrateWithExtra runs migrate with the embedded migrations followed by one
// more, named name, holding sql.
func MigrateWithExtra(ctx context.Context, conn *pgx.Conn, name, sql string) error {
	ms, err := loadMigrations(embeddedMigrations, "migrations")
	if err != nil {
		return err
	}
	ms = append(ms, migration{version: len(ms) + 1, name: name, sql: sql})
	return migrate(ctx, conn, ms)
}

// URLWithUser is urlWithUser.
var URLWithUser = urlWithUser

// MigrateUpTo applies the embedded migrations up to the one whose file name
// contains before, leaving that one and the later ones pending.
func MigrateUpTo(ctx context.Context, conn *pgx.Conn, before string) error {
	ms, err := loadMigrations(embeddedMigrations, "migrations")
	if err != nil {
		return err
	}
	for i, m := range ms {
		if strings.Contains(m.name, before) {
			return migrate(ctx, conn, ms[:i])
		}
	}
	return fmt.Errorf("no migration named like %q", before)
}
