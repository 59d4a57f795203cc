package clickhouse_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
)

// finalRows reads table's rows as ReplacingMergeTree settles them
// (FINAL), as "id name version deleted" lines by id.
func finalRows(t *testing.T, conn driver.Conn, table connectors.TableName) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), "SELECT toString(id), name, toString(_sluice_version), toString(_sluice_is_deleted) FROM `"+
		table.Schema+"`.`"+table.Name+"` FINAL ORDER BY id")
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, name, v, d string
		if err := rows.Scan(&id, &name, &v, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{id, name, v, d}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// tablesOf lists the tables of database db, by name.
func tablesOf(t *testing.T, conn driver.Conn, db string) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), "SELECT name FROM system.tables WHERE database = ? ORDER BY name", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestSwapTables checks the shadow-and-swap operations: CreateTable,
// CarryNewerRows and CarryDeletedRows (the columns both tables have), and
// SwapTables, which replaces a live table by its recorded shadow, drops
// the replaced table, moves a shadow whose live table is missing into its
// place, leaves a user's same-named table alone and does nothing when run
// again.
func TestSwapTables(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	if err := clickhouse.EnsureMetadata(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	info := oldServer(t)
	name := func(n string) connectors.TableName { return connectors.TableName{Schema: db, Name: n} }
	exec := func(sql string) {
		t.Helper()
		if err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// insert adds rows, each a list of values, with INSERT ... SELECT (the
	// native protocol takes no VALUES in the query).
	insert := func(table string, cols string, rows ...string) {
		t.Helper()
		sel := make([]string, len(rows))
		for i, r := range rows {
			sel[i] = "SELECT " + r
		}
		exec("INSERT INTO `" + db + "`.`" + table + "` (" + cols + ") " + strings.Join(sel, " UNION ALL "))
	}
	ts := &connectors.TableSchema{Name: connectors.TableName{Schema: "public", Name: "users"},
		Columns:    []connectors.Column{{Name: "id", Type: "integer", TypeOID: 23, NotNull: true}, {Name: "name", Type: "text", TypeOID: 25}},
		PrimaryKey: []string{"id"}}
	users, orders, gone := name("users"), name("orders"), name("gone")
	for _, live := range []connectors.TableName{users, orders, users} { // CreateTable is idempotent
		if err := clickhouse.CreateTable(ctx, conn, live, ts, info, clickhouse.TableOptions{}); err != nil {
			t.Fatalf("CreateTable %s: %v", live, err)
		}
	}
	if err := clickhouse.CreateTable(ctx, conn, users, ts, info, clickhouse.TableOptions{OrderBy: []string{"nope"}}); err == nil ||
		!strings.Contains(err.Error(), "destination table "+users.String()) {
		t.Fatalf("CreateTable with a bad order_by: %v", err)
	}
	// A column only the live table has is not carried.
	exec("ALTER TABLE `" + db + "`.users ADD COLUMN only_live String")
	const cols = "id, name, _sluice_version, _sluice_is_deleted"
	insert("users", cols+", only_live", "1, 'old', 5, 0, 'x'", "2, 'changed after the copy', 20, 0, 'x'", "3, 'deleted before the copy', 5, 1, 'x'")
	insert("orders", cols, "1, 'deleted', 5, 1", "2, 'kept', 5, 0")
	// A user's table at the name an old table would take first.
	exec("CREATE TABLE `" + db + "`.users_sluice_old (keep_me String) ENGINE = MergeTree ORDER BY keep_me")
	exec("INSERT INTO `" + db + "`.users_sluice_old SELECT 'mine'")

	shadows := map[connectors.TableName]clickhouse.OwnedTable{}
	for _, live := range []connectors.TableName{users, orders, gone} {
		o, err := clickhouse.CreateOwned(ctx, conn, db, "m", live, nil, func(n connectors.TableName, marker string) (string, error) {
			return clickhouse.CreateTableDDL(n, ts, info, clickhouse.TableOptions{Marker: marker})
		})
		if err != nil {
			t.Fatal(err)
		}
		shadows[live] = o
		insert(o.Name.Name, cols, "1, 'copied', 10, 0", "2, 'copied', 10, 0")
	}
	for range 2 { // repeatable: the same rows again collapse
		if err := clickhouse.CarryNewerRows(ctx, conn, users, shadows[users].Name, clickhouse.DefaultVersionColumn, clickhouse.DefaultDeletedColumn, 10); err != nil {
			t.Fatalf("CarryNewerRows: %v", err)
		}
		if err := clickhouse.CarryDeletedRows(ctx, conn, orders, shadows[orders].Name, clickhouse.DefaultDeletedColumn); err != nil {
			t.Fatalf("CarryDeletedRows: %v", err)
		}
	}
	if got, want := finalRows(t, conn, shadows[users].Name), []string{"1 copied 10 0", "2 changed after the copy 20 0", "3 deleted before the copy 5 1"}; !slices.Equal(got, want) {
		t.Fatalf("users' shadow after CarryNewerRows: %q, want %q", got, want)
	}
	if got, want := finalRows(t, conn, shadows[orders].Name), []string{"1 copied 10 0", "2 copied 10 0"}; !slices.Equal(got, want) {
		// orders' deleted row 1 has an older version than the copy's.
		t.Fatalf("orders' shadow after CarryDeletedRows: %q, want %q", got, want)
	}
	insert("orders", cols, "3, 'deleted later', 30, 1")
	if err := clickhouse.CarryDeletedRows(ctx, conn, orders, shadows[orders].Name, clickhouse.DefaultDeletedColumn); err != nil {
		t.Fatal(err)
	}
	if got := finalRows(t, conn, shadows[orders].Name); !slices.Contains(got, "3 deleted later 30 1") {
		t.Fatalf("orders' shadow after CarryDeletedRows: %q, want row 3 deleted", got)
	}
	if err := clickhouse.CarryDeletedRows(ctx, conn, orders, name("missing"), clickhouse.DefaultDeletedColumn); err == nil ||
		!strings.Contains(err.Error(), "no column in common") {
		t.Fatalf("CarryDeletedRows into a missing table: %v", err)
	}

	lives := []connectors.TableName{users, orders, gone}
	for range 2 { // the second run finds no shadow and does nothing
		if err := clickhouse.SwapTables(ctx, conn, info, db, "m", lives, []connectors.TableName{name("users_sluice_old_1")}); err != nil {
			t.Fatalf("SwapTables: %v", err)
		}
		if got, want := finalRows(t, conn, users), []string{"1 copied 10 0", "2 changed after the copy 20 0", "3 deleted before the copy 5 1"}; !slices.Equal(got, want) {
			t.Fatalf("users after SwapTables: %q, want %q", got, want)
		}
		if got, want := finalRows(t, conn, gone), []string{"1 copied 10 0", "2 copied 10 0"}; !slices.Equal(got, want) {
			t.Fatalf("gone after SwapTables: %q, want %q", got, want)
		}
		if got, want := tablesOf(t, conn, db), []string{"gone", "orders", "users", "users_sluice_old"}; !slices.Equal(
			withoutMeta(got), want) {
			t.Fatalf("tables after SwapTables: %q, want %q", got, want)
		}
		for _, role := range []string{clickhouse.RoleShadow, clickhouse.RoleOld} {
			if recs, err := clickhouse.OwnedTables(ctx, conn, db, "m", role); err != nil || len(recs) != 0 {
				t.Fatalf("%s tables recorded after SwapTables: %v, %v", role, recs, err)
			}
		}
	}
	if got := keepMe(t, conn, name("users_sluice_old")); got != "mine" {
		t.Fatalf("the user's users_sluice_old has %q", got)
	}
}

// withoutMeta drops Sluice's metadata tables (names starting with
// "_sluice") from a table list.
func withoutMeta(names []string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return strings.HasPrefix(n, "_sluice") })
}
