package executor_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// byteaRow is a row of the bytea test table: id and the value's bytes (nil
// for NULL).
type byteaRow struct {
	id  string
	val []byte
}

// readBytea reads "id, thumbnail" rows in the given result format over the
// extended protocol (or the simple one when simple is set) and checks that
// thumbnail is described as bytea (OID 17). Text values are decoded from
// \x hex, refusing anything else.
func readBytea(t *testing.T, conn *pgx.Conn, sql string, simple bool, format int16) []byteaRow {
	t.Helper()
	ctx := testCtx(t)
	var results []*pgconn.Result
	if simple {
		var err error
		results, err = conn.PgConn().Exec(ctx, sql).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	} else {
		res := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, []int16{pgx.TextFormatCode, format}).Read()
		if res.Err != nil {
			t.Fatalf("%s: %v", sql, res.Err)
		}
		results = []*pgconn.Result{res}
	}
	res := results[len(results)-1]
	if len(res.FieldDescriptions) != 2 || res.FieldDescriptions[1].DataTypeOID != 17 {
		t.Fatalf("%s: fields %+v, want thumbnail as bytea (17)", sql, res.FieldDescriptions)
	}
	var out []byteaRow
	for _, r := range res.Rows {
		row := byteaRow{id: string(r[0])}
		switch {
		case r[1] == nil:
		case format == pgx.BinaryFormatCode && !simple:
			row.val = append([]byte{}, r[1]...)
		default:
			h, ok := bytes.CutPrefix(r[1], []byte(`\x`))
			if !ok {
				t.Fatalf("%s: text value %q is not \\x hex", sql, r[1])
			}
			row.val = make([]byte, hex.DecodedLen(len(h)))
			if _, err := hex.Decode(row.val, h); err != nil {
				t.Fatalf("%s: text value %q: %v", sql, r[1], err)
			}
		}
		out = append(out, row)
	}
	return out
}

func sameBytea(a, b []byteaRow) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].id != b[i].id || (a[i].val == nil) != (b[i].val == nil) || !bytes.Equal(a[i].val, b[i].val) {
			return false
		}
	}
	return true
}

// TestClickHouseByteaReadBack mirrors a bytea column holding 0x00, 0x80 and
// 0xff into ClickHouse (initial load and CDC), and reads it back through
// Sluice as bytea: in text (\x hex) and binary, over the simple and the
// extended protocol, equal to the source. A table made by an older Sluice
// (no marker) gets it when the mirror starts streaming. A String column
// that is not bytea and holds bytes that are not UTF-8 is refused with
// 22021 naming the column, never sent.
func TestClickHouseByteaReadBack(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.conn, chPeerSQL(ch, "ch"))
	mustExec(t, f.src, `
CREATE TABLE orders (id int PRIMARY KEY, thumbnail bytea, note text);
INSERT INTO orders VALUES (1, '\x0080ff', 'a'), (2, NULL, 'b'), (3, '\x', 'c'), (4, 'plain', 'd'),
  (5, '\x00ff80c328e282', 'e');`)
	mustExec(t, f.conn, `CREATE MIRROR mb FROM src TO ch WITH TABLE MAPPING (public.orders:orders)`)
	f.waitStatus(t, "mb", "RUNNING")
	mustExec(t, f.src, `INSERT INTO orders VALUES (6, '\xff00ff80', 'f'); UPDATE orders SET thumbnail = '\x80' WHERE id = 4`)
	waitSame(t, f.src, `SELECT id || '|' || coalesce(encode(thumbnail, 'hex'), 'NULL') FROM orders ORDER BY id`, ch,
		`SELECT concat(toString(id), '|', ifNull(lower(hex(thumbnail)), 'NULL')) FROM orders FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`)

	source := readBytea(t, f.src, `SELECT id, thumbnail FROM orders ORDER BY id`, false, pgx.BinaryFormatCode)
	const read = `SELECT id, thumbnail FROM ch.orders FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			name   string
			simple bool
			format int16
		}{{"simple", true, pgx.TextFormatCode}, {"extended text", false, pgx.TextFormatCode}, {"extended binary", false, pgx.BinaryFormatCode}} {
			if got := readBytea(t, f.conn, read, c.simple, c.format); !sameBytea(got, source) {
				t.Fatalf("%s, %s: read back %v\nsource %v", when, c.name, got, source)
			}
		}
		// pgx's own scanning, text and binary.
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			rows, err := f.conn.Query(ctx, read, mode)
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			for rows.Next() {
				var id int
				var b []byte
				if err := rows.Scan(&id, &b); err != nil {
					t.Fatalf("%s, mode %v: %v", when, mode, err)
				}
				if fmt.Sprint(id) != source[i].id || !bytes.Equal(b, source[i].val) {
					t.Fatalf("%s, mode %v: row %d = %d %x, source %s %x", when, mode, i, id, b, source[i].id, source[i].val)
				}
				i++
			}
			if rows.Err() != nil || i != len(source) {
				t.Fatalf("%s, mode %v: %d rows, err %v", when, mode, i, rows.Err())
			}
		}
	}
	check("mirrored")
	if got := chRows(t, ch, `SELECT comment FROM system.columns WHERE database = 'default' AND table = 'orders' AND name = 'thumbnail'`); len(got) != 1 || got[0] != "sluice:bytea" {
		t.Fatalf("thumbnail comment %q", got)
	}

	// A table an older Sluice made: no marker. The mirror marks it when it
	// starts streaming again.
	mustExec(t, f.conn, "PAUSE MIRROR mb")
	f.waitStatus(t, "mb", "PAUSED")
	chExec(t, ch, "ALTER TABLE orders COMMENT COLUMN thumbnail ''")
	var oid uint32
	rows, err := f.conn.Query(ctx, `SELECT thumbnail FROM ch.orders WHERE id = 1`, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	oid = rows.FieldDescriptions()[0].DataTypeOID
	rows.Close()
	if oid != 25 || !strings.Contains(fmt.Sprint(rows.Err()), "22021") {
		t.Fatalf("unmarked column: oid %d, err %v; want text and 22021 (0x80 is not UTF-8)", oid, rows.Err())
	}
	mustExec(t, f.conn, "RESUME MIRROR mb")
	f.waitStatus(t, "mb", "RUNNING")
	mustExec(t, f.src, `INSERT INTO orders VALUES (7, '\x00', 'g')`)
	waitSame(t, f.src, `SELECT id || '|' || coalesce(encode(thumbnail, 'hex'), 'NULL') FROM orders ORDER BY id`, ch,
		`SELECT concat(toString(id), '|', ifNull(lower(hex(thumbnail)), 'NULL')) FROM orders FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`)
	source = readBytea(t, f.src, `SELECT id, thumbnail FROM orders ORDER BY id`, false, pgx.BinaryFormatCode)
	check("marked again")

	// A String that is not bytea holding bytes that are not UTF-8: 22021,
	// naming the column, and the session goes on.
	chExec(t, ch, "CREATE TABLE raw (id Int32, s String) ENGINE = MergeTree ORDER BY id",
		"INSERT INTO raw SELECT 1, 'fine'", "INSERT INTO raw SELECT 2, unhex('41ff42')")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		rows, err := f.conn.Query(ctx, `SELECT id, s FROM ch.raw ORDER BY id`, mode)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
		}
		pe := wantError(t, err, pgerrcode.CharacterNotInRepertoire)
		if !strings.Contains(pe.Message, `"s"`) || !strings.Contains(pe.Message, "0xff") || !strings.Contains(pe.Hint, "hex(s)") {
			t.Fatalf("mode %v: %s (hint %s)", mode, pe.Message, pe.Hint)
		}
	}
	var n int
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM ch.raw`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the error: %d, %v", n, err)
	}
	var h string
	if err := f.conn.QueryRow(ctx, `SELECT hex(s) FROM ch.raw WHERE id = 2`).Scan(&h); err != nil || h != "41FF42" {
		t.Fatalf("hex(s): %q, %v", h, err)
	}
}
