package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Temporary tables Sluice creates on a destination (a resync's shadow
// table) are recorded in the metadata table owned_tables, by OID, in the
// transaction that creates them. Sluice drops, renames or truncates such a
// table only while the table at the recorded name still has the recorded
// OID: a table of the same name that it did not record (a user's, or one
// made after its own was dropped) is never touched. A record whose table is
// gone is forgotten.
//
// The name of a new temporary table is free when it is picked: the live
// table's name with "_resync" appended, else "_resync_1", "_resync_2"...
// (cut to fit Postgres's 63 bytes), skipping every name taken in the schema
// (a relation or a type) and the names the caller reserves (the mirror's
// destination tables, which a table missing on the destination would
// otherwise leave free).

// metaOwnedDDL creates the record of temporary tables, one per mirror and
// live table at most.
const metaOwnedDDL = `CREATE TABLE IF NOT EXISTS %s.owned_tables (
	mirror text,
	live_table text,
	name text NOT NULL,
	table_oid oid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (mirror, live_table))`

// OwnedTable is a temporary table Sluice created on the destination for a
// live table of a mirror, and recorded as its own.
type OwnedTable struct {
	Live connectors.TableName // the table it stands in for
	Name connectors.TableName // same schema as Live
	OID  uint32
}

// maxTempTries bounds the search for a free temporary name.
const maxTempTries = 100

// ErrNoFreeName is wrapped by CreateOwnedShadow's error when every
// candidate name for a temporary table is taken. It is
// connectors.ErrNoFreeName, so errors.Is matches either name.
var ErrNoFreeName = connectors.ErrNoFreeName

// ownedRecords reads mirror's records, by live table, without checking
// the tables.
func ownedRecords(ctx context.Context, q Querier, meta, mirror string) (map[connectors.TableName]OwnedTable, error) {
	rows, err := q.Query(ctx, "SELECT live_table, name, table_oid FROM "+metaSchema(meta)+".owned_tables WHERE mirror = $1", mirror)
	if err != nil {
		return nil, fmt.Errorf("read temporary tables of mirror %s: %w", mirror, err)
	}
	out := make(map[connectors.TableName]OwnedTable)
	var live, name string
	var oid uint32
	_, err = pgx.ForEachRow(rows, []any{&live, &name, &oid}, func() error {
		l, err := connectors.ParseTableName(live)
		if err != nil {
			return err
		}
		out[l] = OwnedTable{Live: l, Name: connectors.TableName{Schema: l.Schema, Name: name}, OID: oid}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read temporary tables of mirror %s: %w", mirror, err)
	}
	return out, nil
}

// isOwned reports whether the table at o.Name is still the one recorded
// (same OID).
func isOwned(ctx context.Context, q Querier, o OwnedTable) (bool, error) {
	oid, err := tableOID(ctx, q, o.Name)
	if errors.Is(err, ErrTableNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", o.Name, err)
	}
	return oid == o.OID, nil
}

// OwnedTables returns mirror's temporary tables that still exist, by live
// table: those recorded whose recorded name still has the recorded OID.
// It only reads. EnsureMetadata must have run.
func OwnedTables(ctx context.Context, q Querier, meta, mirror string) (map[connectors.TableName]OwnedTable, error) {
	recs, err := ownedRecords(ctx, q, meta, mirror)
	if err != nil {
		return nil, err
	}
	for l, o := range recs {
		ok, err := isOwned(ctx, q, o)
		if err != nil {
			return nil, err
		}
		if !ok {
			delete(recs, l)
		}
	}
	return recs, nil
}

// OwnedShadow returns the temporary table recorded for live in mirror, if
// it still exists (see OwnedTables). It only reads.
func OwnedShadow(ctx context.Context, q Querier, meta, mirror string, live connectors.TableName) (OwnedTable, bool, error) {
	recs, err := ownedRecords(ctx, q, meta, mirror)
	if err != nil {
		return OwnedTable{}, false, err
	}
	o, has := recs[live]
	if !has {
		return OwnedTable{}, false, nil
	}
	ok, err := isOwned(ctx, q, o)
	return o, ok, err
}

// DropOwned drops the temporary table recorded for live in mirror when the
// table at its name is still the recorded one (plain DROP, never CASCADE),
// and forgets the record in any case. Idempotent; a table of that name with
// another OID is left alone. db is a connection or a transaction.
func DropOwned(ctx context.Context, db interface {
	Querier
	Execer
}, meta, mirror string, live connectors.TableName) error {
	recs, err := ownedRecords(ctx, db, meta, mirror)
	if err != nil {
		return err
	}
	o, has := recs[live]
	if !has {
		return nil
	}
	ok, err := isOwned(ctx, db, o)
	if err != nil {
		return err
	}
	if ok {
		if _, err := db.Exec(ctx, "DROP TABLE "+o.Name.Quoted()); err != nil {
			return fmt.Errorf("drop temporary table %s: %w", o.Name, err)
		}
	}
	return ForgetOwned(ctx, db, meta, mirror, live)
}

// DropAllOwned drops every temporary table recorded for mirror that is
// still the recorded one (see DropOwned) and forgets the records, for DROP
// MIRROR. Idempotent.
func DropAllOwned(ctx context.Context, db interface {
	Querier
	Execer
}, meta, mirror string) error {
	recs, err := ownedRecords(ctx, db, meta, mirror)
	if err != nil {
		return err
	}
	for l := range recs {
		if err := DropOwned(ctx, db, meta, mirror, l); err != nil {
			return err
		}
	}
	return nil
}

// ForgetOwned deletes the record of live's temporary table in mirror,
// without touching any table: call it in the transaction that made the
// table live (a swap) or dropped it. Idempotent.
func ForgetOwned(ctx context.Context, db Execer, meta, mirror string, live connectors.TableName) error {
	_, err := db.Exec(ctx, "DELETE FROM "+metaSchema(meta)+".owned_tables WHERE mirror = $1 AND live_table = $2", mirror, live.String())
	if err != nil {
		return fmt.Errorf("forget temporary table of %s in mirror %s: %w", live, mirror, err)
	}
	return nil
}

// CheckOwned returns an error wrapping ErrNoShadow unless the table at
// o.Name is still the recorded one. In a transaction, lock the table
// first for the answer to hold.
func CheckOwned(ctx context.Context, q Querier, o OwnedTable) error {
	ok, err := isOwned(ctx, q, o)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s is no longer the table Sluice created (OID %d)", ErrNoShadow, o.Name, o.OID)
	}
	return nil
}

// freeTempName returns the first free temporary name for live (see above),
// never one in reserved.
func freeTempName(ctx context.Context, q Querier, live connectors.TableName, reserved []connectors.TableName) (connectors.TableName, error) {
	for k := range maxTempTries {
		name := connectors.TempName(live, tempSuffix, k, maxIdentLen)
		if name == live || slices.Contains(reserved, name) {
			continue
		}
		var taken bool
		err := q.QueryRow(ctx, `
SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)
    OR EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = $2)`,
			name.Schema, name.Name).Scan(&taken)
		if err != nil {
			return connectors.TableName{}, fmt.Errorf("find a free name for a temporary table of %s: %w", live, err)
		}
		if !taken {
			return name, nil
		}
	}
	return connectors.TableName{}, fmt.Errorf("%w: %s%s..%s_%d are all taken in schema %s", ErrNoFreeName,
		live.Name, tempSuffix, tempSuffix, maxTempTries-1, live.Schema)
}

// CreateOwned creates a temporary table for live in mirror and records it,
// in one transaction on conn: the table recorded for live before, if it is
// still the recorded one, is dropped; a free name is picked (never one of
// reserved); create makes the table under that name in tx. A crash leaves
// either the table and its record or neither. Not idempotent: each call
// makes a new table (and drops the previous one).
func CreateOwned(ctx context.Context, conn *pgx.Conn, meta, mirror string, live connectors.TableName, reserved []connectors.TableName,
	create func(tx pgx.Tx, name connectors.TableName) error) (OwnedTable, error) {
	var o OwnedTable
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := DropOwned(ctx, tx, meta, mirror, live); err != nil {
			return err
		}
		name, err := freeTempName(ctx, tx, live, reserved)
		if err != nil {
			return err
		}
		if err := create(tx, name); err != nil {
			return err
		}
		oid, err := tableOID(ctx, tx, name)
		if err != nil {
			return fmt.Errorf("look up temporary table %s: %w", name, err)
		}
		_, err = tx.Exec(ctx, "INSERT INTO "+metaSchema(meta)+".owned_tables (mirror, live_table, name, table_oid) VALUES ($1, $2, $3, $4)",
			mirror, live.String(), name.Name, oid)
		if err != nil {
			return fmt.Errorf("record temporary table %s: %w", name, err)
		}
		o = OwnedTable{Live: live, Name: name, OID: oid}
		return nil
	})
	return o, err
}

// CreateOwnedShadow is CreateOwned with CreateShadow's table: the shadow
// of live for a resync, under a free name, recorded as Sluice's own.
func CreateOwnedShadow(ctx context.Context, conn *pgx.Conn, meta, mirror string, live connectors.TableName,
	reserved []connectors.TableName) (OwnedTable, error) {
	return CreateOwned(ctx, conn, meta, mirror, live, reserved, func(tx pgx.Tx, name connectors.TableName) error {
		return createShadow(ctx, tx, live, name)
	})
}
