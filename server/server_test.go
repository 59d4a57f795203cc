package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sluicedb/sluice/sqlerr"
)

// The server is tested here against a fake backend (a struct of function
// fields); executor's tests drive it end to end against real Postgres.

type fakeBackend struct {
	open func(ctx context.Context, info SessionInfo) (Session, error)
}

func (f fakeBackend) Open(ctx context.Context, info SessionInfo) (Session, error) {
	return f.open(ctx, info)
}

type fakeSession struct {
	query    func(ctx context.Context, sql string, w ResultWriter) error
	prepare  func(ctx context.Context, sql string, oids []uint32) (Statement, error)
	reported bool
}

func (f *fakeSession) Query(ctx context.Context, sql string, w ResultWriter) error {
	return f.query(ctx, sql, w)
}
func (f *fakeSession) Prepare(ctx context.Context, sql string, oids []uint32) (Statement, error) {
	return f.prepare(ctx, sql, oids)
}
func (f *fakeSession) TxStatus() byte { return 'I' }
func (f *fakeSession) ParameterChanges() map[string]string {
	if f.reported {
		return nil
	}
	f.reported = true
	return map[string]string{"server_version": "15.0"}
}
func (f *fakeSession) Close(context.Context) {}

type fakeStatement struct {
	oids   []uint32
	fields []pgproto3.FieldDescription
	exec   func(ctx context.Context, params [][]byte, w ResultWriter) error
}

func (f *fakeStatement) ParamOIDs() []uint32                 { return f.oids }
func (f *fakeStatement) Fields() []pgproto3.FieldDescription { return f.fields }
func (f *fakeStatement) Close(context.Context) error         { return nil }
func (f *fakeStatement) Execute(ctx context.Context, params [][]byte, _, _ []int16, w ResultWriter) error {
	return f.exec(ctx, params, w)
}

var intField = []pgproto3.FieldDescription{{Name: []byte("n"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}

// counter answers "count N" with rows 1..N, "boom" with an error, "panic"
// with a panic and "sleep" by waiting for cancellation.
func counter() *fakeSession {
	rows := func(sql string, w ResultWriter) error {
		n, err := strconv.Atoi(strings.TrimPrefix(sql, "count "))
		if err != nil {
			return sqlerr.New(pgerrcode.SyntaxError, "bad query %q", sql).WithPosition(1)
		}
		for i := 1; i <= n; i++ {
			if err := w.Row([][]byte{[]byte(strconv.Itoa(i))}); err != nil {
				return err
			}
		}
		return w.Complete(fmt.Sprintf("SELECT %d", n))
	}
	s := &fakeSession{}
	s.query = func(ctx context.Context, sql string, w ResultWriter) error {
		for _, q := range strings.Split(sql, ";") {
			q = strings.TrimSpace(q)
			switch q {
			case "":
				continue
			case "panic":
				panic("boom")
			case "sleep":
				<-ctx.Done()
				return ctx.Err()
			case "notice":
				_ = w.Notice(sqlerr.Warning("careful").WithHint("Look both ways.").WithDetail("Cars."))
				_ = w.Notice(&sqlerr.Error{Message: "plain"})
				_ = w.Notice(&sqlerr.Error{Severity: "INFO", Code: "01P01", Message: "info", Where: "here",
					SchemaName: "s", TableName: "t", ColumnName: "c", DataTypeName: "d", ConstraintName: "k"})
				continue
			case "fields":
				return fullError
			}
			if err := w.Fields(intField); err != nil {
				return err
			}
			if err := rows(q, w); err != nil {
				return err
			}
		}
		if strings.TrimSpace(sql) == "" {
			return w.EmptyQuery()
		}
		return nil
	}
	s.prepare = func(_ context.Context, sql string, oids []uint32) (Statement, error) {
		if sql == "notice" {
			return &fakeStatement{exec: func(_ context.Context, _ [][]byte, w ResultWriter) error {
				_ = w.Notice(sqlerr.Warning("from a portal"))
				return w.Complete("SELECT 0")
			}}, nil
		}
		if !strings.HasPrefix(sql, "count") {
			return nil, sqlerr.New(pgerrcode.SyntaxError, "cannot prepare %q", sql)
		}
		return &fakeStatement{oids: []uint32{25}, fields: intField, exec: func(_ context.Context, params [][]byte, w ResultWriter) error {
			return rows("count "+string(params[0]), w)
		}}, nil
	}
	return s
}

// fullError has every field an ErrorResponse can carry.
var fullError = &sqlerr.Error{Code: pgerrcode.CheckViolation, Message: "m", Detail: "D.", Hint: "H.", Position: 3,
	Where: "W", SchemaName: "s", TableName: "t", ColumnName: "c", DataTypeName: "d", ConstraintName: "k",
	InternalQuery: "SELECT x", InternalPosition: 8, File: "f.c", Line: 12, Routine: "r"}

func TestNoticesAndErrorFields(t *testing.T) {
	addr := startServer(t, Config{})
	ctx := context.Background()
	var notices []*pgconn.Notice
	cfg, err := pgconn.ParseConfig("postgres://sluice@" + addr + "/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n) }
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "notice").ReadAll(); err != nil {
		t.Fatal(err)
	}
	want := []pgconn.Notice{
		{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "01000", Message: "careful", Detail: "Cars.", Hint: "Look both ways."},
		{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: "plain"},
		{Severity: "INFO", SeverityUnlocalized: "INFO", Code: "01P01", Message: "info", Where: "here",
			SchemaName: "s", TableName: "t", ColumnName: "c", DataTypeName: "d", ConstraintName: "k"},
	}
	if len(notices) != len(want) {
		t.Fatalf("notices = %v", notices)
	}
	for i := range want {
		if *notices[i] != want[i] {
			t.Errorf("notice %d = %+v, want %+v", i, *notices[i], want[i])
		}
	}
	_, err = conn.Exec(ctx, "fields").ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	if pe.Severity != "ERROR" || pe.Code != fullError.Code || pe.Message != "m" || pe.Detail != "D." || pe.Hint != "H." ||
		pe.Position != 3 || pe.Where != "W" || pe.SchemaName != "s" || pe.TableName != "t" || pe.ColumnName != "c" ||
		pe.DataTypeName != "d" || pe.ConstraintName != "k" || pe.InternalQuery != "SELECT x" || pe.InternalPosition != 8 ||
		pe.File != "f.c" || pe.Line != 12 || pe.Routine != "r" {
		t.Errorf("error = %+v", *pe)
	}
	// A notice while a portal runs in pieces reaches the client too.
	notices = nil
	if _, err := conn.Prepare(ctx, "n", "notice", nil); err != nil {
		t.Fatal(err)
	}
	if res := conn.ExecPrepared(ctx, "n", nil, nil, nil).Read(); res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(notices) != 1 || notices[0].Message != "from a portal" {
		t.Fatalf("notices = %v", notices)
	}
	// Also when the portal's rows are buffered for an Execute with a row
	// limit.
	fe := rawConn(t, addr)
	fe.Send(&pgproto3.Parse{Query: "notice"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{MaxRows: 1})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := until(t, fe, 'Z'); got != "12NCZ" {
		t.Errorf("buffered portal: got %s", got)
	}
}

func startServer(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(cfg, fakeBackend{open: func(context.Context, SessionInfo) (Session, error) { return counter(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

// rawConn speaks the protocol by hand after a trust start-up.
func rawConn(t *testing.T, addr string) *pgproto3.Frontend {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "sluice", "database": "x"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	until(t, fe, 'Z')
	return fe
}

// until reads messages up to and including one of type want ('Z' for
// ReadyForQuery), returning their type letters.
func until(t *testing.T, fe *pgproto3.Frontend, want byte) string {
	t.Helper()
	var got strings.Builder
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("receive after %q: %v", got.String(), err)
		}
		c := typeLetter(msg)
		got.WriteByte(c)
		if c == want {
			return got.String()
		}
	}
}

func typeLetter(msg pgproto3.BackendMessage) byte {
	switch msg.(type) {
	case *pgproto3.ReadyForQuery:
		return 'Z'
	case *pgproto3.RowDescription:
		return 'T'
	case *pgproto3.DataRow:
		return 'D'
	case *pgproto3.CommandComplete:
		return 'C'
	case *pgproto3.ErrorResponse:
		return 'E'
	case *pgproto3.ParseComplete:
		return '1'
	case *pgproto3.BindComplete:
		return '2'
	case *pgproto3.CloseComplete:
		return '3'
	case *pgproto3.NoData:
		return 'n'
	case *pgproto3.PortalSuspended:
		return 's'
	case *pgproto3.ParameterDescription:
		return 't'
	case *pgproto3.EmptyQueryResponse:
		return 'I'
	case *pgproto3.NoticeResponse:
		return 'N'
	case *pgproto3.ParameterStatus:
		return 'S'
	case *pgproto3.BackendKeyData:
		return 'K'
	case *pgproto3.AuthenticationOk:
		return 'R'
	}
	return '?'
}

func TestSimpleQuery(t *testing.T) {
	fe := rawConn(t, startServer(t, Config{}))
	tests := []struct{ sql, want string }{
		{"count 2", "TDDCZ"},
		{"count 1; count 0", "TDCTCZ"},
		{"", "IZ"},
		{"nonsense", "TEZ"},
		{"panic", "EZ"},
		{"count 1", "TDCZ"}, // the session survives all of the above
	}
	for _, tt := range tests {
		fe.Send(&pgproto3.Query{String: tt.sql})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := until(t, fe, 'Z'); got != tt.want {
			t.Errorf("%q: got %s, want %s", tt.sql, got, tt.want)
		}
	}
}

func TestExtendedProtocol(t *testing.T) {
	fe := rawConn(t, startServer(t, Config{}))
	send := func(msgs ...pgproto3.FrontendMessage) {
		for _, m := range msgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("describe and execute", func(t *testing.T) {
		send(&pgproto3.Parse{Name: "s1", Query: "count $1"}, &pgproto3.Describe{ObjectType: 'S', Name: "s1"},
			&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("3")}, ResultFormatCodes: []int16{1}},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got := until(t, fe, 'Z'); got != "1tT2TDDDCZ" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("portal suspended", func(t *testing.T) {
		send(&pgproto3.Bind{PreparedStatement: "s1", DestinationPortal: "p", Parameters: [][]byte{[]byte("5")}},
			&pgproto3.Execute{Portal: "p", MaxRows: 2}, &pgproto3.Execute{Portal: "p", MaxRows: 2},
			&pgproto3.Execute{Portal: "p", MaxRows: 2}, &pgproto3.Close{ObjectType: 'P', Name: "p"}, &pgproto3.Sync{})
		if got := until(t, fe, 'Z'); got != "2DDsDDsDC3Z" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("error skips to sync", func(t *testing.T) {
		send(&pgproto3.Parse{Query: "bad"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "nosuch"}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Parse{Name: "s1", Query: "count 1"}, &pgproto3.Sync{})
		if got := until(t, fe, 'Z'); got != "EZ" {
			t.Errorf("bad parse: got %s", got)
		}
		if got := until(t, fe, 'Z'); got != "EZ" {
			t.Errorf("unknown statement: got %s", got)
		}
		if got := until(t, fe, 'Z'); got != "EZ" {
			t.Errorf("duplicate statement name: got %s", got)
		}
	})
	t.Run("close statement", func(t *testing.T) {
		send(&pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Close{ObjectType: 'S', Name: "s1"},
			&pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
		if got := until(t, fe, 'Z'); got != "33EZ" {
			t.Errorf("got %s", got)
		}
	})
}

func TestPgxAgainstServer(t *testing.T) {
	addr := startServer(t, Config{Password: "pw"})
	ctx := context.Background()
	url := "postgres://sluice:pw@" + addr + "/db?sslmode=disable"
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "count $1", "4")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(got) != 4 || got[3] != "4" {
		t.Fatalf("rows = %v, %v", got, err)
	}
	_, err = pgx.Connect(ctx, "postgres://sluice:wrong@"+addr+"/db?sslmode=disable")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != pgerrcode.InvalidPassword {
		t.Fatalf("wrong password: %v", err)
	}
	// Cancellation reaches the running statement.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := conn.Exec(cctx, "sleep"); err == nil {
		t.Fatal("sleep returned without error")
	}
}

func TestTLS(t *testing.T) {
	addr := startServer(t, Config{Password: "pw", TLS: selfSigned(t)})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, "postgres://sluice:pw@"+addr+"/db?sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("connection is %T, not TLS", conn.PgConn().Conn())
	}
	var n string
	if err := conn.QueryRow(ctx, "count $1", "1").Scan(&n); err != nil || n != "1" {
		t.Fatalf("query over TLS: %q, %v", n, err)
	}
}

func TestMessageSizeLimit(t *testing.T) {
	fe := rawConn(t, startServer(t, Config{MaxMessageSize: 2048}))
	fe.Send(&pgproto3.Query{String: "count " + strings.Repeat("1", 4096)})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	e, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || e.Code != pgerrcode.ProgramLimitExceeded || e.Severity != "FATAL" {
		t.Fatalf("got %#v", msg)
	}
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
