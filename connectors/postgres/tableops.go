package postgres

import (
	"context"
	"fmt"

	"github.com/sluicedb/sluice/connectors"
)

// Operations on destination tables that the mirror flows run: each takes
// a connection or a transaction (Execer, Querier) and plain names, and
// runs the statements the package builds.

// CreateTable creates the destination table name for the source table ts
// (CreateTableDDL: the table and the enum types it needs, with the
// optional soft-delete and synced-at columns), one statement after
// another on db: run it in a transaction for all or nothing. Not
// idempotent: a table of that name is an error. The error is Postgres's,
// unwrapped, for the caller to say which table it was making (a
// destination or a shadow table).
func CreateTable(ctx context.Context, db Execer, name connectors.TableName, ts *connectors.TableSchema, softDeleteCol, syncedAtCol string) error {
	for _, stmt := range CreateTableDDL(name, ts, softDeleteCol, syncedAtCol) {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// DropTableIfExists drops table name if it exists (plain DROP, never
// CASCADE, so an object that depends on it makes it fail). Idempotent.
func DropTableIfExists(ctx context.Context, db Execer, name connectors.TableName) error {
	if _, err := db.Exec(ctx, "DROP TABLE IF EXISTS "+name.Quoted()); err != nil {
		return fmt.Errorf("drop table %s: %w", name, err)
	}
	return nil
}

// DropTables drops every table of tables that exists, in one statement
// (DropTablesSQL: without CASCADE, so an object outside the set that
// depends on one makes it fail with 2BP01). Nothing to do for no table.
// Idempotent. The error is Postgres's, unwrapped.
func DropTables(ctx context.Context, db Execer, tables []connectors.TableName) error {
	if len(tables) == 0 {
		return nil
	}
	_, err := db.Exec(ctx, DropTablesSQL(tables))
	return err
}

// AnalyzeTable collects the planner's statistics of table (ANALYZE), as a
// table just loaded needs before readers use it. Idempotent.
func AnalyzeTable(ctx context.Context, db Execer, table connectors.TableName) error {
	if _, err := db.Exec(ctx, "ANALYZE "+table.Quoted()); err != nil {
		return fmt.Errorf("analyze %s: %w", table, err)
	}
	return nil
}

// EnsurePrimaryKey adds to dest the primary key of source table ts
// (PrimaryKeyDDL) unless dest has a primary key. Idempotent.
func EnsurePrimaryKey(ctx context.Context, db interface {
	Querier
	Execer
}, dest connectors.TableName, ts *connectors.TableSchema) error {
	has, err := HasPrimaryKey(ctx, db, dest)
	if err != nil || has {
		return err
	}
	if _, err := db.Exec(ctx, PrimaryKeyDDL(dest, ts)); err != nil {
		return fmt.Errorf("add primary key to %s: %w", dest, err)
	}
	return nil
}

// CreateIndexes runs on db, one by one, the statements IndexDDL made for
// table (the source's indexes, each skipped when its name is taken), so
// it is idempotent.
func CreateIndexes(ctx context.Context, db Execer, table connectors.TableName, stmts []string) error {
	for _, s := range stmts {
		if _, err := db.Exec(ctx, s); err != nil {
			return fmt.Errorf("create index on %s: %w", table, err)
		}
	}
	return nil
}

// CreateForeignKeys runs on db, one by one, the statements ForeignKeyDDL
// made for table (each skipped when table has a constraint of its name),
// so it is idempotent.
func CreateForeignKeys(ctx context.Context, db Execer, table connectors.TableName, stmts []string) error {
	for _, s := range stmts {
		if _, err := db.Exec(ctx, s); err != nil {
			return fmt.Errorf("create foreign key on %s: %w", table, err)
		}
	}
	return nil
}
