package clickhouse_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/connectors/postgres"
)

const moodOID = 50000 // an enum's OID, as DescribeTable reports it

// typeCase is one column of the every-type table with its ClickHouse types.
type typeCase struct {
	col       connectors.Column
	old, newT string // on 18.16, on a modern server
}

func typeCases() []typeCase {
	c := func(name, typ string, oid uint32, notNull bool) connectors.Column {
		return connectors.Column{Name: name, Type: typ, TypeOID: oid, NotNull: notNull}
	}
	return []typeCase{
		{c("id", "bigint", pgtype.Int8OID, true), "Int64", "Int64"},
		{c("i2", "smallint", pgtype.Int2OID, false), "Nullable(Int16)", "Nullable(Int16)"},
		{c("i4", "integer", pgtype.Int4OID, true), "Int32", "Int32"},
		{c("f4", "real", pgtype.Float4OID, false), "Nullable(Float32)", "Nullable(Float32)"},
		{c("f8", "double precision", pgtype.Float8OID, false), "Nullable(Float64)", "Nullable(Float64)"},
		{c("b", "boolean", pgtype.BoolOID, false), "Nullable(UInt8)", "Nullable(Bool)"},
		{c("n", "numeric(20,6)", pgtype.NumericOID, false), "Nullable(Decimal(20, 6))", "Nullable(Decimal(20, 6))"},
		{c("nbig", "numeric(60,2)", pgtype.NumericOID, false), "Nullable(String)", "Nullable(Decimal(60, 2))"},
		{c("nu", "numeric", pgtype.NumericOID, false), "Nullable(String)", "Nullable(String)"},
		{c("t", "text", pgtype.TextOID, false), "Nullable(String)", "Nullable(String)"},
		{c("vc", "character varying(10)", pgtype.VarcharOID, true), "String", "String"},
		{c("bp", "character(3)", pgtype.BPCharOID, false), "Nullable(String)", "Nullable(String)"},
		{c("nm", "name", pgtype.NameOID, false), "Nullable(String)", "Nullable(String)"},
		{c("by", "bytea", pgtype.ByteaOID, false), "Nullable(String)", "Nullable(String)"},
		{c("u", "uuid", pgtype.UUIDOID, false), "Nullable(UUID)", "Nullable(UUID)"},
		{c("j", "json", pgtype.JSONOID, false), "Nullable(String)", "Nullable(String)"},
		{c("jb", "jsonb", pgtype.JSONBOID, false), "Nullable(String)", "Nullable(String)"},
		{c("d", "date", pgtype.DateOID, false), "Nullable(String)", "Nullable(Date32)"},
		{c("ts", "timestamp without time zone", pgtype.TimestampOID, false), "Nullable(String)", "Nullable(DateTime64(6, 'UTC'))"},
		{c("tz", "timestamp with time zone", pgtype.TimestamptzOID, false), "Nullable(String)", "Nullable(DateTime64(6, 'UTC'))"},
		{c("tm", "time without time zone", pgtype.TimeOID, false), "Nullable(String)", "Nullable(String)"},
		{c("iv", "interval", pgtype.IntervalOID, false), "Nullable(String)", "Nullable(String)"},
		{c("ip", "inet", pgtype.InetOID, false), "Nullable(String)", "Nullable(String)"},
		{c("cidr", "cidr", pgtype.CIDROID, false), "Nullable(String)", "Nullable(String)"},
		{c("mood", `"public"."mood"`, moodOID, false), "Nullable(String)", "Nullable(String)"},
		{c("pt", "point", pgtype.PointOID, false), "Nullable(String)", "Nullable(String)"},
		{c("ai", "integer[]", pgtype.Int4ArrayOID, false), "Array(Nullable(Int32))", "Array(Nullable(Int32))"},
		{c("at", "text[]", pgtype.TextArrayOID, true), "Array(Nullable(String))", "Array(Nullable(String))"},
		{c("an", "numeric(10,2)[]", pgtype.NumericArrayOID, false), "Array(Nullable(Decimal(10, 2)))", "Array(Nullable(Decimal(10, 2)))"},
		{c("ats", "timestamp with time zone[]", pgtype.TimestamptzArrayOID, false), "Array(Nullable(String))", "Array(Nullable(DateTime64(6, 'UTC')))"},
		{c("amood", `"public"."mood"[]`, moodOID+1, false), "Array(Nullable(String))", "Array(Nullable(String))"},
	}
}

// everyTypeSchema is a source table with every mapped type.
func everyTypeSchema() *connectors.TableSchema {
	ts := &connectors.TableSchema{Name: connectors.TableName{Schema: "public", Name: "every"}, PrimaryKey: []string{"id"}}
	for i, tc := range typeCases() {
		tc.col.Position = i + 1
		ts.Columns = append(ts.Columns, tc.col)
	}
	return ts
}

var modernServer = clickhouse.ServerInfo{Version: "23.8.1", Major: 23, Minor: 8}

func TestColumnType(t *testing.T) {
	old := clickhouse.ServerInfo{Version: "18.16.1", Major: 18, Minor: 16}
	for _, tc := range typeCases() {
		t.Run(tc.col.Name, func(t *testing.T) {
			for _, v := range []struct {
				info clickhouse.ServerInfo
				want string
			}{{old, tc.old}, {modernServer, tc.newT}} {
				got, err := clickhouse.ColumnType(tc.col, false, v.info)
				if err != nil || got != v.want {
					t.Fatalf("on %s: got %q, %v; want %q", v.info.Version, got, err, v.want)
				}
			}
		})
	}
	// A key column is never Nullable.
	got, err := clickhouse.ColumnType(connectors.Column{Name: "k", Type: "text", TypeOID: pgtype.TextOID}, true, old)
	if err != nil || got != "String" {
		t.Fatalf("key column: %q, %v", got, err)
	}
	// A type pgtype does not know is a clear error.
	_, err = clickhouse.ColumnType(connectors.Column{Name: "cash", Type: "money", TypeOID: 790}, false, old)
	if err == nil || !strings.Contains(err.Error(), `"cash"`) || !strings.Contains(err.Error(), "money") {
		t.Fatalf("money: %v", err)
	}
}

func TestCreateTableDDL(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	info := oldServer(t)
	dest := connectors.TableName{Schema: db, Name: "every"}
	ts := everyTypeSchema()
	ddl, err := clickhouse.CreateTableDDL(dest, ts, info, clickhouse.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(ddl)
	for range 2 { // idempotent
		if err := conn.Exec(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	ok, err := clickhouse.TableExists(ctx, conn, dest)
	if err != nil || !ok {
		t.Fatalf("exists: %v, %v", ok, err)
	}
	var want []string
	for _, tc := range typeCases() {
		want = append(want, "name="+tc.col.Name+" type="+tc.old)
	}
	want = append(want, "name=_sluice_version type=UInt64", "name=_sluice_is_deleted type=UInt8", "name=_sluice_synced_at type=DateTime")
	slices.Sort(want)
	got := query(t, conn, "SELECT name, type FROM system.columns WHERE database = '"+db+"' AND table = 'every'")
	equalRows(t, "columns", got, want)
	got = query(t, conn, "SELECT engine_full FROM system.tables WHERE database = '"+db+"' AND name = 'every'")
	if len(got) != 1 || !strings.Contains(got[0], "ReplacingMergeTree(_sluice_version) ORDER BY id") {
		t.Fatalf("engine: %v", got)
	}

	// Options: names, an order_by with the key.
	ts2 := &connectors.TableSchema{Name: connectors.TableName{Schema: "public", Name: "users"}, PrimaryKey: []string{"id"},
		Columns: []connectors.Column{{Name: "id", Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true},
			{Name: "tenant_id", Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true},
			{Name: "name", Type: "text", TypeOID: pgtype.TextOID}}}
	users := connectors.TableName{Schema: db, Name: "users"}
	ddl, err = clickhouse.CreateTableDDL(users, ts2, info, clickhouse.TableOptions{OrderBy: []string{"tenant_id", "id"},
		VersionColumn: "ver", DeletedColumn: "gone", SyncedAtColumn: "at"})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, ddl); err != nil {
		t.Fatalf("%s: %v", ddl, err)
	}
	got = query(t, conn, "SELECT engine_full FROM system.tables WHERE database = '"+db+"' AND name = 'users'")
	if len(got) != 1 || !strings.Contains(got[0], "ReplacingMergeTree(ver) ORDER BY (tenant_id, id)") {
		t.Fatalf("engine: %v", got)
	}
	if err := clickhouse.DropTable(ctx, conn, users); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.DropTable(ctx, conn, users); err != nil { // idempotent
		t.Fatal(err)
	}
	if ok, err := clickhouse.TableExists(ctx, conn, users); err != nil || ok {
		t.Fatalf("exists after drop: %v, %v", ok, err)
	}

	// A column nullable in the source may be in the sorting key: it is
	// made non-Nullable there.
	ddl, err = clickhouse.CreateTableDDL(users, ts2, info, clickhouse.TableOptions{OrderBy: []string{"name", "id"}})
	if err != nil || !strings.Contains(ddl, "`name` String,") || !strings.Contains(ddl, "ORDER BY (`name`, `id`)") {
		t.Fatalf("nullable order_by column: %v\n%s", err, ddl)
	}
	if got := clickhouse.NullableKeyColumns(ts2, []string{"name", "id"}); len(got) != 1 || got[0] != "name" {
		t.Fatalf("NullableKeyColumns = %q, want [name]", got)
	}

	bad := []struct {
		name string
		opts clickhouse.TableOptions
		text string
	}{
		{"order_by without the key", clickhouse.TableOptions{OrderBy: []string{"tenant_id"}}, `"id" is missing`},
		{"unknown order_by column", clickhouse.TableOptions{OrderBy: []string{"id", "nope"}}, `"nope"`},
		{"clashing column", clickhouse.TableOptions{DeletedColumn: "name"}, `"name" is replicated`},
		{"same names", clickhouse.TableOptions{DeletedColumn: "x", SyncedAtColumn: "x"}, "must differ"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clickhouse.CreateTableDDL(users, ts2, info, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want it to say %q", err, tc.text)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	for range 2 {
		if err := clickhouse.EnsureMetadata(ctx, conn, db); err != nil {
			t.Fatal(err)
		}
	}
	if pos, ok, err := clickhouse.LastPosition(ctx, conn, db, "m"); err != nil || ok || pos != "" {
		t.Fatalf("fresh: %s %v %v", pos, ok, err)
	}
	for _, l := range []uint64{100, 300, 200} {
		if err := clickhouse.SetPosition(ctx, conn, db, "m", postgres.LSNPosition(l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := clickhouse.SetPosition(ctx, conn, db, "other", "binlog.000003:42"); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.SetPosition(ctx, conn, db, "other", ""); err == nil {
		t.Fatal("SetPosition of no position succeeded")
	}
	if pos, ok, err := clickhouse.LastPosition(ctx, conn, db, "m"); err != nil || !ok || pos != postgres.LSNPosition(300) {
		t.Fatalf("after sets: %s %v %v", pos, ok, err)
	}
	orders := connectors.TableName{Schema: "public", Name: "orders"}
	users := connectors.TableName{Schema: "public", Name: "users"}
	for _, p := range []struct {
		table connectors.TableName
		part  int
		rows  int64
	}{{orders, 0, 10}, {orders, 1, 20}, {orders, 1, 25}, {users, 0, 5}} {
		if err := clickhouse.MarkPartitionDone(ctx, conn, db, "m", p.table, p.part, p.rows); err != nil {
			t.Fatal(err)
		}
	}
	done, err := clickhouse.DonePartitions(ctx, conn, db, "m", orders)
	if err != nil || len(done) != 2 || done[0] != 10 || done[1] != 25 {
		t.Fatalf("done: %v %v", done, err)
	}
	if err := clickhouse.ClearTable(ctx, conn, db, "m", orders); err != nil {
		t.Fatal(err)
	}
	if done, err := clickhouse.DonePartitions(ctx, conn, db, "m", orders); err != nil || len(done) != 0 {
		t.Fatalf("after clear table: %v %v", done, err)
	}
	if done, err := clickhouse.DonePartitions(ctx, conn, db, "m", users); err != nil || len(done) != 1 {
		t.Fatalf("other table: %v %v", done, err)
	}
	for range 2 {
		if err := clickhouse.ClearMirror(ctx, conn, db, "m"); err != nil {
			t.Fatal(err)
		}
	}
	if pos, ok, err := clickhouse.LastPosition(ctx, conn, db, "m"); err != nil || ok || pos != "" {
		t.Fatalf("after clear: %s %v %v", pos, ok, err)
	}
	if done, err := clickhouse.DonePartitions(ctx, conn, db, "m", users); err != nil || len(done) != 0 {
		t.Fatalf("after clear mirror: %v %v", done, err)
	}
	if pos, ok, err := clickhouse.LastPosition(ctx, conn, db, "other"); err != nil || !ok || pos != "binlog.000003:42" {
		t.Fatalf("other mirror: %s %v %v", pos, ok, err)
	}
}

// TestMetadataBeforePositions: a mirror state table made before positions
// (no position column, LSNs in lsn) gets the column from EnsureMetadata
// and its rows read as the LSNs' positions; rows written then carry both,
// and a merge keeps the newest.
func TestMetadataBeforePositions(t *testing.T) {
	ctx := testCtx(t)
	conn, db := newDB(t)
	tbl := "`" + db + "`." + clickhouse.MirrorStateTable
	if err := conn.Exec(ctx, "CREATE TABLE "+tbl+
		" (mirror String, lsn UInt64, updated_at DateTime) ENGINE = ReplacingMergeTree(lsn) ORDER BY mirror"); err != nil {
		t.Fatal(err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+tbl+" (mirror, lsn, updated_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, lsn := range []uint64{0x100000100, 0x100000000} {
		if err := batch.Append("m", lsn, time.Now().UTC().Truncate(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := clickhouse.EnsureMetadata(ctx, conn, db); err != nil {
			t.Fatal(err)
		}
	}
	if pos, ok, err := clickhouse.LastPosition(ctx, conn, db, "m"); err != nil || !ok || pos != postgres.LSNPosition(0x100000100) {
		t.Fatalf("old rows: %s %v %v", pos, ok, err)
	}
	if err := clickhouse.SetPosition(ctx, conn, db, "m", postgres.LSNPosition(0x100000200)); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+tbl+" FINAL"); err != nil {
		t.Fatal(err)
	}
	equalRows(t, "merged", query(t, conn, "SELECT mirror, lsn, position FROM "+tbl), []string{
		"mirror=m lsn=4294967808 position=0000000100000200"})
	if pos, ok, err := clickhouse.LastPosition(ctx, conn, db, "m"); err != nil || !ok || pos != postgres.LSNPosition(0x100000200) {
		t.Fatalf("after a set: %s %v %v", pos, ok, err)
	}
}
