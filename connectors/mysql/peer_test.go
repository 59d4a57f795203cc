package mysql_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
	"github.com/sluicedb/sluice/sqlerr"
)

func TestParsePeerOptions(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{"host": "db", "user": "repl"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cfg, err := mysql.ParsePeerOptions(base())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 3306 || cfg.Flavor != "" || cfg.Mechanism != mysql.MechanismAuto || cfg.ServerID != mysql.DefaultServerID {
		t.Errorf("defaults: %+v", cfg)
	}
	stored := cfg.StoredOptions(base())
	if stored["port"] != "3306" || stored["replication_mechanism"] != "auto" || stored["host"] != "db" {
		t.Errorf("stored options: %v", stored)
	}
	cfg, err = mysql.ParsePeerOptions(base("flavor", "MariaDB", "replication_mechanism", "filepos", "server_id", "77", "port", "3307"))
	if err != nil || cfg.Flavor != mysql.FlavorMariaDB || cfg.Mechanism != mysql.MechanismFilePos || cfg.ServerID != 77 || cfg.Port != 3307 {
		t.Errorf("explicit: %+v %v", cfg, err)
	}
	for _, c := range []struct {
		opts map[string]string
		key  string
		want string
	}{
		{base("slot_name", "x"), "slot_name", "unknown option"},
		{base("flavor", "oracle"), "flavor", "not mysql or mariadb"},
		{base("replication_mechanism", "binlog"), "replication_mechanism", "not gtid, filepos or auto"},
		{base("server_id", "0"), "server_id", "not a server id"},
		{base("server_id", "-1"), "server_id", "not a server id"},
		{base("port", "70000"), "port", "not a port"},
		{map[string]string{"user": "u"}, "host", "required"},
		{base("require_tls", "true", "disable_tls", "true"), "disable_tls", "conflicts"},
	} {
		_, err := mysql.ParsePeerOptions(c.opts)
		var oe *connectors.OptionError
		if !errors.As(err, &oe) || oe.Key != c.key || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want an OptionError on %q saying %q", c.opts, err, c.key, c.want)
		}
	}
}

func TestKind(t *testing.T) {
	k := mysql.Kind()
	if k.Type != "MYSQL" || !k.Source || k.Destination || k.Federated != nil || k.Wire != nil || k.FormatPosition == nil {
		t.Errorf("kind: %+v", k)
	}
	if _, err := k.Parse(map[string]string{"host": "h", "user": "u", "bogus": "1"}); err == nil {
		t.Error("unknown option accepted")
	}
}

// TestCheck connects to the test server and reports its version, settings
// and retention, and no warning.
func TestCheck(t *testing.T) {
	pc, err := peerOn(t, maria, "", nil).Check(testCtx(t), "my")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pc.Version, "MariaDB") {
		t.Errorf("version %q", pc.Version)
	}
	var msgs []string
	for _, n := range pc.Notices {
		msgs = append(msgs, n.Severity+": "+n.Message)
		if n.Severity == "WARNING" {
			t.Errorf("unexpected warning: %s", n.Message)
		}
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"MariaDB 10.", "binlog_format=ROW", "binlog_row_metadata=FULL", "keeps binlogs"} {
		if !strings.Contains(all, want) {
			t.Errorf("notices lack %q:\n%s", want, all)
		}
	}
	// A wrong flavor is a warning.
	pc, err = peerOn(t, maria, "", map[string]string{"flavor": "mysql"}).Check(testCtx(t), "my")
	if err != nil || len(pc.Notices) < 3 || !strings.Contains(pc.Notices[1].Message, "flavor") {
		t.Errorf("flavor mismatch: %v %+v", err, pc.Notices)
	}
	// A wrong password is an error naming the address.
	bad := peerOn(t, maria, "", map[string]string{"password": "nope"})
	if _, err := bad.Check(testCtx(t), "my"); err == nil || !strings.Contains(err.Error(), maria.Addr()) ||
		!strings.Contains(err.Error(), "Access denied") {
		t.Errorf("wrong password: %v", err)
	}
	var se *sqlerr.Error
	if errors.As(err, &se) {
		t.Errorf("connection failure is a *sqlerr.Error: %v", err)
	}
}

func TestRetentionNotice(t *testing.T) {
	for _, c := range []struct {
		s        map[string]string
		severity string
		want     string
	}{
		{map[string]string{"expire_logs_days": "0", "binlog_expire_logs_seconds": "0"}, "NOTICE", "purged by hand"},
		{map[string]string{"expire_logs_days": "0.000000", "binlog_expire_logs_seconds": "2592000"}, "NOTICE", "30 days"},
		{map[string]string{"expire_logs_days": "7"}, "NOTICE", "7 days"},
		{map[string]string{"binlog_expire_logs_seconds": "3600"}, "WARNING", "only 1 hour"},
	} {
		n := mysql.RetentionNotice("p", c.s)
		if n.Severity != c.severity || !strings.Contains(n.Message, c.want) {
			t.Errorf("%v: %s %s", c.s, n.Severity, n.Message)
		}
	}
}
