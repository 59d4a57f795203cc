package clickhouse_test

import (
	"errors"
	"net"
	"reflect"
	"strconv"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/sqlerr"
)

// rowSink is a connectors.RowSink that keeps what it is sent; NULL is
// "<NULL>".
type rowSink struct {
	fields []pgproto3.FieldDescription
	rows   [][]string
	tag    string
}

func (s *rowSink) Fields(f []pgproto3.FieldDescription) error { s.fields = f; return nil }

func (s *rowSink) Row(values [][]byte) error {
	row := make([]string, len(values))
	for i, v := range values {
		row[i] = "<NULL>"
		if v != nil {
			row[i] = string(v)
		}
	}
	s.rows = append(s.rows, row)
	return nil
}

func (s *rowSink) Complete(tag string) error { s.tag = tag; return nil }

func oidsOf(fields []pgproto3.FieldDescription) []uint32 {
	out := make([]uint32, len(fields))
	for i, f := range fields {
		out[i] = f.DataTypeOID
	}
	return out
}

// wantCode fails unless err is a SQL error with SQLSTATE code.
func wantCode(t *testing.T, what string, err error, code string) *sqlerr.Error {
	t.Helper()
	var e *sqlerr.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("%s: got %v (%#v), want SQLSTATE %s", what, err, e, code)
	}
	return e
}

// TestFederatedReader runs federated reads and EXECUTE through the
// connectors' interfaces, as the executor does, against a real server.
func TestFederatedReader(t *testing.T) {
	ctx := testCtx(t)
	admin, db := newDB(t)
	for _, sql := range []string{
		"CREATE TABLE files (id Int64, name String, data String COMMENT '" + clickhouse.ByteaMarker + "') " +
			"ENGINE = MergeTree ORDER BY id",
		"INSERT INTO files SELECT 1, 'a', unhex('00FF')",
		"INSERT INTO files SELECT 2, 'b', 'x'",
	} {
		if err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var reader connectors.FederatedReader = clickhouse.FederatedReader{}
	conn := reader.OpenFederated("ch", peer("database", db))
	t.Cleanup(func() { _ = conn.Close() })

	// Simple protocol: described, the bytea column as bytea.
	var s rowSink
	if err := conn.Query(ctx, "SELECT id, data FROM files ORDER BY id", &s); err != nil {
		t.Fatal(err)
	}
	if got, want := oidsOf(s.fields), []uint32{pgtype.Int8OID, pgtype.ByteaOID}; !reflect.DeepEqual(got, want) {
		t.Errorf("query: column types %v, want %v", got, want)
	}
	if want := [][]string{{"1", `\x00ff`}, {"2", `\x78`}}; !reflect.DeepEqual(s.rows, want) || s.tag != "SELECT 2" {
		t.Errorf("query: rows %q %q, want %q SELECT 2", s.rows, s.tag, want)
	}

	// A value that is not text is refused, naming the column.
	err := conn.Query(ctx, "SELECT unhex('FF') AS raw", &rowSink{})
	if e := wantCode(t, "invalid text", err, pgerrcode.CharacterNotInRepertoire); e.Message !=
		`invalid byte sequence for encoding "UTF8": 0xff in column "raw" of clickhouse peer "ch"` {
		t.Errorf("invalid text: message %q", e.Message)
	}
	// Federated queries are read-only.
	err = conn.Query(ctx, "INSERT INTO files SELECT 3, 'c', 'y'", &rowSink{})
	wantCode(t, "write", err, pgerrcode.ReadOnlySQLTransaction)

	// Extended protocol: the parameter's type comes from the column it is
	// compared with (Int64: int8).
	st, err := conn.Prepare(ctx, "SELECT name, data FROM files WHERE id = $1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.ParamOIDs(); !reflect.DeepEqual(got, []uint32{pgtype.Int8OID}) {
		t.Errorf("prepare: parameter types %v, want [int8]", got)
	}
	if got, want := oidsOf(st.Fields()), []uint32{pgtype.TextOID, pgtype.ByteaOID}; !reflect.DeepEqual(got, want) {
		t.Errorf("prepare: column types %v, want %v", got, want)
	}
	run := func(what string, c connectors.FederatedConn, param []byte, format int16, want [][]string) {
		t.Helper()
		var s rowSink
		if err := st.Execute(ctx, c, [][]byte{param}, []int16{format}, []int16{pgtype.BinaryFormatCode}, &s); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if s.fields != nil {
			t.Errorf("%s: a row description was sent", what)
		}
		if !reflect.DeepEqual(s.rows, want) || s.tag != "SELECT "+strconv.Itoa(len(want)) {
			t.Errorf("%s: rows %q %q, want %q", what, s.rows, s.tag, want)
		}
	}
	run("execute", conn, []byte("1"), pgtype.TextFormatCode, [][]string{{"a", "\x00\xff"}})
	// After Close the connection is made again on first use; a statement
	// also runs on another connection (a peer re-created).
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	run("execute after close", conn, []byte("2"), pgtype.TextFormatCode, [][]string{{"b", "x"}})
	other := reader.OpenFederated("ch", peer("database", db))
	t.Cleanup(func() { _ = other.Close() })
	run("execute on another connection", other, []byte{0, 0, 0, 0, 0, 0, 0, 2}, pgtype.BinaryFormatCode,
		[][]string{{"b", "x"}})
	err = st.Execute(ctx, conn, [][]byte{[]byte("x")}, nil, nil, &rowSink{})
	wantCode(t, "bad parameter", err, pgerrcode.InvalidTextRepresentation)

	// EXECUTE: statements as they are, with the peer user's rights.
	pe, ok := conn.(connectors.PeerExecutor)
	if !ok {
		t.Fatal("a ClickHouse connection is not a PeerExecutor")
	}
	s = rowSink{}
	if err := pe.Execute(ctx, "CREATE TABLE more (a Int32) ENGINE = Memory", 9, &s); err != nil {
		t.Fatal(err)
	}
	if s.fields != nil || s.rows != nil || s.tag != "EXECUTE" {
		t.Errorf("execute DDL: %+v, want only the tag EXECUTE", s)
	}
	s = rowSink{}
	if err := pe.Execute(ctx, "SELECT count() AS n FROM files", 9, &s); err != nil {
		t.Fatal(err)
	}
	if got := oidsOf(s.fields); !reflect.DeepEqual(got, []uint32{pgtype.NumericOID}) ||
		!reflect.DeepEqual(s.rows, [][]string{{"2"}}) || s.tag != "SELECT 1" {
		t.Errorf("execute SELECT: %v %q %q", got, s.rows, s.tag)
	}
	err = pe.Execute(ctx, "INSERT INTO more VALUES (1)", 9, &rowSink{})
	if e := wantCode(t, "INSERT VALUES", err, pgerrcode.FeatureNotSupported); e.Position != 9 {
		t.Errorf("INSERT VALUES: position %d, want 9", e.Position)
	}
	pst, err := pe.PrepareExecute(ctx, "INSERT INTO more SELECT 2", 9)
	if err != nil {
		t.Fatal(err)
	}
	if pst.Fields() != nil || len(pst.ParamOIDs()) != 0 {
		t.Errorf("prepared INSERT: fields %v, parameters %v", pst.Fields(), pst.ParamOIDs())
	}
	s = rowSink{}
	if err := pst.Execute(ctx, conn, nil, nil, nil, &s); err != nil || s.tag != "EXECUTE" {
		t.Errorf("prepared INSERT: %v, tag %q", err, s.tag)
	}

	// A server that is not there: 08001, naming the peer.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	gone := reader.OpenFederated("gone", peer("port", port))
	err = gone.Query(ctx, "SELECT 1", &rowSink{})
	if e := wantCode(t, "no server", err, pgerrcode.SQLClientUnableToEstablishSQLConnection); len(e.Message) < 12 ||
		e.Message[:12] != `peer "gone":` {
		t.Errorf("no server: message %q", e.Message)
	}
	// The HTTP port: the hint names the native one.
	http := reader.OpenFederated("http", peer("port", strconv.Itoa(server.HTTPPort())))
	err = http.Query(ctx, "SELECT 1", &rowSink{})
	if e := wantCode(t, "HTTP port", err, pgerrcode.SQLClientUnableToEstablishSQLConnection); e.Hint != clickhouse.HTTPPortHint {
		t.Errorf("HTTP port: hint %q", e.Hint)
	}
}
