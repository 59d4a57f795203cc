package postgres

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// order's attempts as "tls,plain" or "plain,tls".
func attempts(t *testing.T, m *tlsMemo) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host, cfg.Port = "db.example", 5432
	m.order(cfg, &tls.Config{ServerName: "db.example"})
	switch {
	case len(cfg.Fallbacks) != 1:
		t.Fatalf("fallbacks: %d", len(cfg.Fallbacks))
	case cfg.TLSConfig != nil && cfg.Fallbacks[0].TLSConfig == nil:
		return "tls,plain"
	case cfg.TLSConfig == nil && cfg.Fallbacks[0].TLSConfig != nil:
		return "plain,tls"
	}
	t.Fatalf("attempts: %+v then %+v", cfg.TLSConfig, cfg.Fallbacks[0])
	return ""
}

func TestTLSMemo(t *testing.T) {
	if got := attempts(t, nil); got != "tls,plain" {
		t.Errorf("no memo: %s", got)
	}
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	m := newTLSMemo()
	m.now = func() time.Time { return now }
	const addr = "db.example:5432"
	if got := attempts(t, m); got != "tls,plain" {
		t.Errorf("nothing known: %s", got)
	}
	// TLS tried first, plain text it was: the server refused TLS.
	m.connected(addr, false, false)
	if got := attempts(t, m); got != "plain,tls" {
		t.Errorf("refused: %s", got)
	}
	// A plain connection tried first does not renew the memo.
	now = now.Add(tlsRefusedFor - time.Second)
	m.connected(addr, true, false)
	if got := attempts(t, m); got != "plain,tls" {
		t.Errorf("refused %s ago: %s", tlsRefusedFor-time.Second, got)
	}
	now = now.Add(time.Second)
	if got := attempts(t, m); got != "tls,plain" {
		t.Errorf("refused %s ago: %s (TLS is to be tried again)", tlsRefusedFor, got)
	}
	// Refused again, then a connection came up over TLS (the plain
	// attempt failed): forgotten.
	m.connected(addr, false, false)
	m.connected(addr, true, true)
	if got := attempts(t, m); got != "tls,plain" {
		t.Errorf("connected over TLS: %s", got)
	}
	// Another address is another server.
	m.connected("other.example:5432", false, false)
	if got := attempts(t, m); got != "tls,plain" {
		t.Errorf("another server refused: %s", got)
	}
}
