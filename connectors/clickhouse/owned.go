package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Temporary tables Sluice makes on a ClickHouse destination (a resync's
// shadow table, the old table a swap renames away before dropping it, and
// the stage of a transaction sent before its commit: apply_stage.go)
// are recorded in the metadata table _sluice_owned_tables BEFORE they are
// created or renamed into place, each with a random token. The table
// itself carries the token as the comment of one of its columns (ClickHouse
// 18.16 has no table comments and no table UUIDs in Ordinary databases):
// CreateTableDDL puts it on the version column of a new table, and a live
// table is marked (ALTER TABLE ... COMMENT COLUMN) before it is renamed
// away. A recorded table is Sluice's only while the table at the recorded
// name carries the recorded token: Sluice drops or renames nothing else,
// and a record whose table is gone or unmarked is forgotten.
//
// Names are picked free: the live table's name with the role's suffix
// ("_resync", "_sluice_old", "_sluice_stage"), else with "_1", "_2"... appended, skipping
// every table in the database and the names the caller reserves.

// OwnedTablesTable is the metadata table recording temporary tables.
const OwnedTablesTable = "_sluice_owned_tables"

// Roles of a temporary table.
const (
	RoleShadow = "shadow" // a resync's copy, swapped in for the live table
	RoleOld    = "old"    // a live table renamed away, to be dropped
	RoleStage  = "stage"  // changes of a transaction not committed yet
)

// roles are every role, for the drops of a mirror's or a table's.
var roles = []string{RoleShadow, RoleOld, RoleStage}

// ownedDDL creates the record; rows are only inserted, the newest per
// (mirror, live, role) wins, and dropped = 1 forgets.
const ownedDDL = " (mirror String, live String, role String, name String, token String, dropped UInt8, version UInt64)" +
	" ENGINE = ReplacingMergeTree(version) ORDER BY (mirror, live, role)"

// OwnedTable is a temporary table Sluice recorded as its own.
type OwnedTable struct {
	Live  connectors.TableName // the table it stands in for
	Name  connectors.TableName // same database as Live
	Role  string               // RoleShadow or RoleOld
	Token string               // the marker's token
}

// Marker is the column comment that marks the table as o.
func (o OwnedTable) Marker() string { return "sluice-owned:" + o.Token }

// ErrNoFreeName is wrapped by CreateOwned's error when every candidate
// name is taken: connectors.ErrNoFreeName.
var ErrNoFreeName = connectors.ErrNoFreeName

const maxTempTries = 100

// NewOwned returns a record for a temporary table name of live with role,
// with a new random token. Pure but for the randomness.
func NewOwned(live, name connectors.TableName, role string) (OwnedTable, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return OwnedTable{}, err
	}
	return OwnedTable{Live: live, Name: name, Role: role, Token: hex.EncodeToString(b)}, nil
}

// ownedRecords reads mirror's records of role, by live table, without
// checking the tables.
func ownedRecords(ctx context.Context, conn driver.Conn, db, mirror, role string) (map[connectors.TableName]OwnedTable, error) {
	rows, err := conn.Query(ctx, "SELECT live, argMax(name, version), argMax(token, version), argMax(dropped, version) FROM "+
		metaTable(db, OwnedTablesTable)+" WHERE mirror = ? AND role = ? GROUP BY live", mirror, role)
	if err != nil {
		return nil, fmt.Errorf("read temporary tables of mirror %q: %w", mirror, err)
	}
	defer rows.Close()
	out := make(map[connectors.TableName]OwnedTable)
	for rows.Next() {
		var live, name, token string
		var dropped uint8
		if err := rows.Scan(&live, &name, &token, &dropped); err != nil {
			return nil, fmt.Errorf("read temporary tables of mirror %q: %w", mirror, err)
		}
		if dropped != 0 {
			continue
		}
		l, err := connectors.ParseTableName(live)
		if err != nil {
			return nil, err
		}
		out[l] = OwnedTable{Live: l, Name: connectors.TableName{Schema: l.Schema, Name: name}, Role: role, Token: token}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read temporary tables of mirror %q: %w", mirror, err)
	}
	return out, nil
}

// IsOwned reports whether the table at o.Name carries o's marker. It only
// reads.
func IsOwned(ctx context.Context, conn driver.Conn, o OwnedTable) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND comment = ?",
		o.Name.Schema, o.Name.Name, o.Marker()).Scan(&n); err != nil {
		return false, fmt.Errorf("look up %s: %w", o.Name, err)
	}
	return n > 0, nil
}

// OwnedTables returns mirror's recorded temporary tables of role that
// still exist (carry their marker), by live table. It only reads;
// EnsureMetadata must have run.
func OwnedTables(ctx context.Context, conn driver.Conn, db, mirror, role string) (map[connectors.TableName]OwnedTable, error) {
	recs, err := ownedRecords(ctx, conn, db, mirror, role)
	if err != nil {
		return nil, err
	}
	for l, o := range recs {
		ok, err := IsOwned(ctx, conn, o)
		if err != nil {
			return nil, err
		}
		if !ok {
			delete(recs, l)
		}
	}
	return recs, nil
}

// Record records o for mirror (replacing the record of o.Live and o.Role).
// Call it before the table exists under o.Name. Idempotent.
func Record(ctx context.Context, conn driver.Conn, db, mirror string, o OwnedTable) error {
	if err := insertRow(ctx, conn, metaTable(db, OwnedTablesTable)+" (mirror, live, role, name, token, dropped, version)",
		mirror, o.Live.String(), o.Role, o.Name.Name, o.Token, uint8(0), uint64(time.Now().UnixNano())); err != nil {
		return fmt.Errorf("record temporary table %s: %w", o.Name, err)
	}
	return nil
}

// Forget forgets the record of live's temporary table of role, without
// touching any table. Idempotent.
func Forget(ctx context.Context, conn driver.Conn, db, mirror string, live connectors.TableName, role string) error {
	if err := insertRow(ctx, conn, metaTable(db, OwnedTablesTable)+" (mirror, live, role, name, token, dropped, version)",
		mirror, live.String(), role, "", "", uint8(1), uint64(time.Now().UnixNano())); err != nil {
		return fmt.Errorf("forget temporary table of %s: %w", live, err)
	}
	return nil
}

// DropOwned drops live's temporary table of role when the table at its
// recorded name still carries its marker, and forgets the record in any
// case. Idempotent; a same-named table without the marker is left alone.
func DropOwned(ctx context.Context, conn driver.Conn, db, mirror string, live connectors.TableName, role string) error {
	recs, err := ownedRecords(ctx, conn, db, mirror, role)
	if err != nil {
		return err
	}
	o, has := recs[live]
	if !has {
		return nil
	}
	ok, err := IsOwned(ctx, conn, o)
	if err != nil {
		return err
	}
	if ok {
		if err := conn.Exec(ctx, "DROP TABLE "+qualified(o.Name)); err != nil {
			return fmt.Errorf("drop temporary table %s: %w", o.Name, err)
		}
	}
	return Forget(ctx, conn, db, mirror, live, role)
}

// DropAllOwned drops every temporary table recorded for mirror that still
// carries its marker and forgets the records (DROP MIRROR). Idempotent.
func DropAllOwned(ctx context.Context, conn driver.Conn, db, mirror string) error {
	for _, role := range roles {
		if err := dropRole(ctx, conn, db, mirror, role); err != nil {
			return err
		}
	}
	return nil
}

// dropRole drops every temporary table of role recorded for mirror that
// still carries its marker and forgets the records. Idempotent.
func dropRole(ctx context.Context, conn driver.Conn, db, mirror, role string) error {
	recs, err := ownedRecords(ctx, conn, db, mirror, role)
	if err != nil {
		return err
	}
	for l := range recs {
		if err := DropOwned(ctx, conn, db, mirror, l, role); err != nil {
			return err
		}
	}
	return nil
}

// FreeName returns a name for a temporary table of live with role's
// suffix that no table of the database has, and that is in neither
// reserved nor taken (names picked for other tables not created yet).
func FreeName(ctx context.Context, conn driver.Conn, live connectors.TableName, role string, reserved []connectors.TableName) (connectors.TableName, error) {
	suffix := map[string]string{RoleShadow: connectors.ShadowSuffix, RoleOld: "_sluice_old", RoleStage: "_sluice_stage"}[role]
	base := live.Name + suffix
	for k := range maxTempTries {
		name := connectors.TempName(live, suffix, k, 0)
		if slices.Contains(reserved, name) {
			continue
		}
		exists, err := TableExists(ctx, conn, name)
		if err != nil {
			return connectors.TableName{}, err
		}
		if !exists {
			return name, nil
		}
	}
	return connectors.TableName{}, fmt.Errorf("%w: %s..%s_%d are all taken in database %s", ErrNoFreeName, base, base, maxTempTries-1, live.Schema)
}

// CreateOwned makes a shadow table for live in mirror: the shadow recorded
// before (if it still carries its marker) is dropped, a free name is
// picked, the table is recorded, then created with ddl(name, marker),
// which must create it marked (TableOptions.Marker) and fail if the name
// is taken. A crash in between leaves a record without a table, which is
// forgotten later. Not idempotent: each call makes a new table.
func CreateOwned(ctx context.Context, conn driver.Conn, db, mirror string, live connectors.TableName, reserved []connectors.TableName,
	ddl func(name connectors.TableName, marker string) (string, error)) (OwnedTable, error) {
	return createOwned(ctx, conn, db, mirror, live, RoleShadow, reserved, ddl)
}

// createOwned is CreateOwned for a temporary table of role.
func createOwned(ctx context.Context, conn driver.Conn, db, mirror string, live connectors.TableName, role string,
	reserved []connectors.TableName, ddl func(name connectors.TableName, marker string) (string, error)) (OwnedTable, error) {
	if err := DropOwned(ctx, conn, db, mirror, live, role); err != nil {
		return OwnedTable{}, err
	}
	name, err := FreeName(ctx, conn, live, role, reserved)
	if err != nil {
		return OwnedTable{}, err
	}
	o, err := NewOwned(live, name, role)
	if err != nil {
		return OwnedTable{}, err
	}
	sql, err := ddl(name, o.Marker())
	if err != nil {
		return OwnedTable{}, err
	}
	if err := Record(ctx, conn, db, mirror, o); err != nil {
		return OwnedTable{}, err
	}
	if err := conn.Exec(ctx, sql); err != nil {
		return OwnedTable{}, fmt.Errorf("create temporary table %s: %w", name, err)
	}
	return o, nil
}

// MarkTable marks table (a live table about to be renamed away) as o:
// the comment of its column column becomes o's marker. Idempotent.
func MarkTable(ctx context.Context, conn driver.Conn, o OwnedTable, table connectors.TableName, column string) error {
	if err := conn.Exec(ctx, "ALTER TABLE "+qualified(table)+" COMMENT COLUMN "+quoteIdent(column)+" "+quoteString(o.Marker())); err != nil {
		return fmt.Errorf("mark %s as Sluice's: %w", table, err)
	}
	return nil
}
