package server

import (
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// startWith sends a StartupMessage asking for version and returns the
// frontend to read the answer from.
func startWith(t *testing.T, addr string, version uint32, params map[string]string) *pgproto3.Frontend {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: version, Parameters: params})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	return fe
}

// An unsupported major version gets Postgres' FATAL 0A000, then the end of
// the connection.
func TestStartupUnsupportedMajorVersion(t *testing.T) {
	addr := startServer(t, Config{})
	for _, v := range []struct {
		version uint32
		message string
	}{
		{2 << 16, "unsupported frontend protocol 2.0: server supports 3.0 to 3.0"},
		{4 << 16, "unsupported frontend protocol 4.0: server supports 3.0 to 3.0"},
		{1<<16 | 7, "unsupported frontend protocol 1.7: server supports 3.0 to 3.0"},
	} {
		fe := startWith(t, addr, v.version, map[string]string{"user": "sluice"})
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("%s: %v", v.message, err)
		}
		e, ok := msg.(*pgproto3.ErrorResponse)
		if !ok {
			t.Fatalf("version %#x: got %T, want ErrorResponse", v.version, msg)
		}
		if e.Severity != "FATAL" || e.Code != "0A000" || e.Message != v.message {
			t.Errorf("version %#x: got %s %s %q", v.version, e.Severity, e.Code, e.Message)
		}
		if msg, err := fe.Receive(); err == nil {
			t.Errorf("version %#x: got %T after the FATAL, want the connection closed", v.version, msg)
		}
	}
}

// A newer 3.x minor version, or a protocol option, gets
// NegotiateProtocolVersion naming 3.0 and every option; the session then
// starts at 3.0 and answers queries. The options are not session parameters.
func TestStartupNegotiatesMinorVersion(t *testing.T) {
	addr := startServer(t, Config{})
	for _, v := range []struct {
		version uint32
		options []string
	}{
		{pgproto3.ProtocolVersion32, nil},
		{3<<16 | 99, []string{"_pq_.a", "_pq_.b"}},
		{pgproto3.ProtocolVersion30, []string{"_pq_.x"}},
	} {
		params := map[string]string{"user": "sluice", "database": "x"}
		for _, o := range v.options {
			params[o] = "on"
		}
		fe := startWith(t, addr, v.version, params)
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("version %#x: %v", v.version, err)
		}
		n, ok := msg.(*pgproto3.NegotiateProtocolVersion)
		if !ok {
			t.Fatalf("version %#x: got %T, want NegotiateProtocolVersion", v.version, msg)
		}
		want := v.options
		if want == nil {
			want = []string{}
		}
		if n.NewestMinorProtocol != pgproto3.ProtocolVersion30 || !reflect.DeepEqual(n.UnrecognizedOptions, want) {
			t.Errorf("version %#x: got NegotiateProtocolVersion %#x %q", v.version, n.NewestMinorProtocol, n.UnrecognizedOptions)
		}
		until(t, fe, 'Z')
		fe.Send(&pgproto3.Query{String: "count 2"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := until(t, fe, 'Z'); got != "TDDCZ" {
			t.Errorf("version %#x: query after start-up: got %s", v.version, got)
		}
	}
	// 3.0 without options gets no NegotiateProtocolVersion.
	fe := startWith(t, addr, pgproto3.ProtocolVersion30, map[string]string{"user": "sluice"})
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := msg.(*pgproto3.AuthenticationOk); !ok {
		t.Errorf("3.0: got %T first, want AuthenticationOk", msg)
	}
}
