package clickhouse_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

// keepMe reads the one row of a user's table (keep_me String).
func keepMe(t *testing.T, conn driver.Conn, table connectors.TableName) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(testCtx(t), "SELECT keep_me FROM `"+table.Schema+"`.`"+table.Name+"`").Scan(&s); err != nil {
		t.Fatalf("read the user's %s: %v", table, err)
	}
	return s
}

// TestOwnedTables checks the record of temporary tables on ClickHouse: a
// shadow gets a free name, is recorded and marked; DropOwned drops only a
// table that carries the recorded marker; an old table recorded before a
// crash is found and dropped; a same-named table of a user is never
// touched.
func TestOwnedTables(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	if err := clickhouse.EnsureMetadata(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	name := func(n string) connectors.TableName { return connectors.TableName{Schema: db, Name: n} }
	user := func(n string) {
		t.Helper()
		for _, s := range []string{"CREATE TABLE `" + db + "`.`" + n + "` (keep_me String) ENGINE = MergeTree ORDER BY keep_me",
			"INSERT INTO `" + db + "`.`" + n + "` SELECT 'mine'"} {
			if err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	user("users_resync")
	user("users_sluice_old")
	live := name("users")
	ts := &connectors.TableSchema{Name: connectors.TableName{Schema: "public", Name: "users"},
		Columns: []connectors.Column{{Name: "id", Type: "integer", TypeOID: 23, NotNull: true}}, PrimaryKey: []string{"id"}}
	info := oldServer(t)
	ddl := func(n connectors.TableName, marker string) (string, error) {
		return clickhouse.CreateTableDDL(n, ts, info, clickhouse.TableOptions{Marker: marker})
	}
	reserved := []connectors.TableName{name("users_resync_1")}
	o, err := clickhouse.CreateOwned(ctx, conn, db, "m", live, reserved, ddl)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != name("users_resync_2") {
		t.Fatalf("shadow %s, want users_resync_2 (users_resync taken, _1 reserved)", o.Name)
	}
	owned, err := clickhouse.OwnedTables(ctx, conn, db, "m", clickhouse.RoleShadow)
	if err != nil || owned[live] != o {
		t.Fatalf("OwnedTables = %v, %v; want %v", owned, err, o)
	}

	// The user replaces the shadow by a table of their own: not Sluice's.
	if err := conn.Exec(ctx, "DROP TABLE `"+db+"`.users_resync_2"); err != nil {
		t.Fatal(err)
	}
	user("users_resync_2")
	if owned, err := clickhouse.OwnedTables(ctx, conn, db, "m", clickhouse.RoleShadow); err != nil || len(owned) != 0 {
		t.Fatalf("OwnedTables after the user's replacement = %v, %v; want none", owned, err)
	}
	if err := clickhouse.DropOwned(ctx, conn, db, "m", live, clickhouse.RoleShadow); err != nil {
		t.Fatal(err)
	}
	if got := keepMe(t, conn, name("users_resync_2")); got != "mine" {
		t.Fatalf("the user's users_resync_2 has %q after DropOwned", got)
	}

	// An old table recorded and marked before a crash is dropped; the
	// user's users_sluice_old is not.
	if err := conn.Exec(ctx, "CREATE TABLE `"+db+"`.users (id Int32, `_sluice_version` UInt64) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	oldName, err := clickhouse.FreeName(ctx, conn, live, clickhouse.RoleOld, nil)
	if err != nil || oldName != name("users_sluice_old_1") {
		t.Fatalf("old table name %s (%v), want users_sluice_old_1", oldName, err)
	}
	old, err := clickhouse.NewOwned(live, oldName, clickhouse.RoleOld)
	if err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.MarkTable(ctx, conn, old, live, clickhouse.DefaultVersionColumn); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.Record(ctx, conn, db, "m", old); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "RENAME TABLE `"+db+"`.users TO `"+db+"`.users_sluice_old_1"); err != nil {
		t.Fatal(err)
	}
	// -- crash --
	if err := clickhouse.DropAllOwned(ctx, conn, db, "m"); err != nil {
		t.Fatal(err)
	}
	if has, err := clickhouse.TableExists(ctx, conn, oldName); err != nil || has {
		t.Fatalf("old table %s still there (%v)", oldName, err)
	}
	for _, n := range []string{"users_resync", "users_sluice_old", "users_resync_2"} {
		if got := keepMe(t, conn, name(n)); got != "mine" {
			t.Fatalf("the user's %s has %q", n, got)
		}
	}

	// Every candidate taken: refused, nothing made.
	user("t_resync")
	var many []connectors.TableName
	for k := 1; k < 100; k++ {
		many = append(many, name("t_resync_"+strconv.Itoa(k)))
	}
	if _, err := clickhouse.CreateOwned(ctx, conn, db, "m", name("t"), many, ddl); !errors.Is(err, clickhouse.ErrNoFreeName) {
		t.Fatalf("CreateOwned with every name taken: %v, want ErrNoFreeName", err)
	}
}
