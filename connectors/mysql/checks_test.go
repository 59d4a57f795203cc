package mysql_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/mysql"
	"github.com/sluicedb/sluice/internal/testbed"
	"github.com/sluicedb/sluice/sqlerr"
)

// wantNotReady checks that err is a *sqlerr.Error whose message and hint
// name what to change.
func wantNotReady(t *testing.T, what string, err error, msg, hint string) {
	t.Helper()
	var se *sqlerr.Error
	if !errors.As(err, &se) || !strings.Contains(se.Message, msg) || !strings.Contains(se.Hint, hint) {
		t.Errorf("%s: err = %v (hint %q), want a *sqlerr.Error saying %q with a hint saying %q", what, err, hintOf(err), msg, hint)
	}
}

func hintOf(err error) string {
	var se *sqlerr.Error
	if errors.As(err, &se) {
		return se.Hint
	}
	return ""
}

// TestCanStream runs the checks on the shared server (ready), as a user
// without the replication privileges, and on a server with MariaDB's own
// binlog defaults, changed one setting at a time.
func TestCanStream(t *testing.T) {
	ctx := testCtx(t)
	if err := openSource(t, "").CanStream(ctx); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	if err := openSource(t, "").NamesFree(ctx, connectors.StreamSpec{Mirror: "m"}); err != nil {
		t.Errorf("NamesFree: %v", err)
	}

	maria.Exec(t, "", "CREATE OR REPLACE USER 'plain'@'127.0.0.1' IDENTIFIED BY 'pw'",
		"GRANT SELECT ON *.* TO 'plain'@'127.0.0.1'")
	peer := peerOn(t, maria, "", map[string]string{"user": "plain", "password": "pw"})
	src, err := peer.OpenSource(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	wantNotReady(t, "no privileges", src.(*mysql.Source).CanStream(ctx), "REPLICATION SLAVE", "GRANT REPLICATION SLAVE")
	maria.Exec(t, "", "GRANT REPLICATION SLAVE ON *.* TO 'plain'@'127.0.0.1'")
	wantNotReady(t, "no client privilege", src.(*mysql.Source).CanStream(ctx), "REPLICATION CLIENT", "BINLOG MONITOR")
	maria.Exec(t, "", "GRANT REPLICATION CLIENT ON *.* TO 'plain'@'127.0.0.1'")
	if err := src.(*mysql.Source).CanStream(ctx); err != nil {
		t.Errorf("with both privileges: %v", err)
	}
	// CREATE PEER warns with the same words.
	pc, err := peer.Check(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range pc.Notices {
		if n.Severity == "WARNING" {
			t.Errorf("warning with both privileges: %s", n.Message)
		}
	}

	bad, err := testbed.StartMariaDBWith(ctx, map[string]string{"binlog_format": "MIXED", "binlog_row_metadata": "",
		"binlog_row_image": "MINIMAL", "expire_logs_days": "0.5"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Stop()
	bsrc, err := peerOn(t, bad, "", nil).OpenSource(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer bsrc.Close(ctx)
	check := bsrc.(*mysql.Source).CanStream
	wantNotReady(t, "MIXED", check(ctx), "binlog_format is MIXED, not ROW", "binlog_format = ROW")
	bad.Exec(t, "", "SET GLOBAL binlog_format = 'ROW'")
	wantNotReady(t, "MINIMAL", check(ctx), "binlog_row_image is MINIMAL, not FULL", "binlog_row_image = FULL")
	bad.Exec(t, "", "SET GLOBAL binlog_row_image = 'FULL'")
	wantNotReady(t, "NO_LOG", check(ctx), "binlog_row_metadata is NO_LOG, not FULL", "binlog_row_metadata = FULL")
	pc, err = peerOn(t, bad, "", nil).Check(ctx, "bad")
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, n := range pc.Notices {
		if n.Severity == "WARNING" {
			warnings = append(warnings, n.Message)
		}
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "12 hours") || !strings.Contains(warnings[1], "binlog_row_metadata") {
		t.Errorf("CREATE PEER's warnings on a server not ready: %q", warnings)
	}
	bad.Exec(t, "", "SET GLOBAL binlog_row_metadata = 'FULL'")
	if err := check(ctx); err != nil {
		t.Errorf("after fixing the settings: %v", err)
	}
}

// TestCanStreamSettings covers what a test server cannot show: the binlog
// off, a server without binlog_row_metadata, MySQL without GTIDs.
func TestCanStreamSettings(t *testing.T) {
	ready := map[string]string{"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
	grants := []string{"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `repl`@`%`"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ready {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	wantNotReady(t, "log_bin off", mysql.CanStreamInfo(mysql.ServerInfo{Flavor: mysql.FlavorMariaDB, Settings: with("log_bin", "OFF"), Grants: grants}, mysql.MechanismAuto),
		"the binlog is off", "log_bin")
	wantNotReady(t, "old server", mysql.CanStreamInfo(mysql.ServerInfo{Flavor: mysql.FlavorMySQL, Version: "5.7.44", Settings: with("binlog_row_metadata", ""), Grants: grants}, mysql.MechanismAuto),
		"MySQL 5.7.44 has no binlog_row_metadata", "Upgrade")
	wantNotReady(t, "gtid off", mysql.CanStreamInfo(mysql.ServerInfo{Flavor: mysql.FlavorMySQL, Settings: with("gtid_mode", "OFF"), Grants: grants}, mysql.MechanismGTID),
		"by file and offset", "replication_mechanism")
	if err := mysql.CanStreamInfo(mysql.ServerInfo{Flavor: mysql.FlavorMySQL, Settings: with("gtid_mode", "OFF"), Grants: grants}, mysql.MechanismAuto); err != nil {
		t.Errorf("auto without GTIDs: %v", err)
	}
	for _, c := range []struct {
		grants        []string
		slave, client bool
	}{
		{[]string{"GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"}, true, true},
		{[]string{"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `r`@`%`"}, true, true},
		{[]string{"GRANT REPLICATION REPLICA ON *.* TO `r`@`%`", "GRANT SUPER ON *.* TO `r`@`%`"}, true, true},
		{[]string{"GRANT ALL PRIVILEGES ON `app`.* TO `r`@`%`"}, false, false},
		{[]string{"GRANT USAGE ON *.* TO `r`@`%`"}, false, false},
	} {
		s, cl := mysql.GrantsReplication(c.grants)
		if s != c.slave || cl != c.client {
			t.Errorf("%q: slave %v client %v", c.grants, s, cl)
		}
	}
}
