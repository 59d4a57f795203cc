package mysql

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// The checks a MySQL source answers before a mirror is made
// (connectors.MirrorChecker). Each failure is a *sqlerr.Error naming the
// setting and how to change it. CREATE PEER runs the same checks and turns
// a failure into a warning (Check), since a peer can be made before the
// server is ready.

var _ connectors.MirrorChecker = (*Source)(nil)

// CanStream implements connectors.MirrorChecker: the server must write a
// row-based binlog (log_bin on, binlog_format=ROW) with full row images
// (binlog_row_image=FULL: updates and deletes carry every column, so a
// replay converges) and full metadata (binlog_row_metadata=FULL: without
// it rows carry no column names, charsets, signedness or enum labels), the
// user needs REPLICATION SLAVE (to read the binlog) and REPLICATION CLIENT
// (SHOW MASTER STATUS, BINLOG MONITOR on MariaDB 10.5 and later), and
// replication_mechanism = 'gtid' is for MariaDB (a MySQL stream resumes by
// file and offset).
func (s *Source) CanStream(ctx context.Context) error {
	info, err := inspect(s.conn)
	if err != nil {
		return err
	}
	return canStream(info, s.peer.Mechanism)
}

// NamesFree implements connectors.MirrorChecker: a MySQL source keeps
// nothing named per mirror (a binlog reader registers as a replica while it
// reads, and leaves nothing behind), so there is nothing to be taken.
func (s *Source) NamesFree(context.Context, connectors.StreamSpec) error { return nil }

// notReady is the error of a setting that keeps a server from being a CDC
// source.
func notReady(format string, args ...any) *sqlerr.Error {
	return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, format, args...)
}

// canStream checks what CanStream checks, on what inspect read.
func canStream(info ServerInfo, mechanism string) error {
	s := info.Settings
	restart := "in the server's configuration file ([mysqld] section) and restart the server"
	if v := s["log_bin"]; !isOn(v) {
		return notReady("cannot be a CDC source: the binlog is off (log_bin = %s)", orNone(v)).
			WithHint("%s", "Set log_bin (e.g. log_bin = mysql-bin) and a server_id "+restart+".")
	}
	if v := s["binlog_format"]; !strings.EqualFold(v, "ROW") {
		return notReady("cannot be a CDC source: binlog_format is %s, not ROW", orNone(v)).
			WithHint("%s", "Run SET GLOBAL binlog_format = 'ROW' and set binlog_format = ROW "+restart+
				" (connections keep the format they started with).")
	}
	if v := s["binlog_row_image"]; !strings.EqualFold(v, "FULL") {
		return notReady("cannot be a CDC source: binlog_row_image is %s, not FULL", orNone(v)).
			WithHint("%s", "Run SET GLOBAL binlog_row_image = 'FULL' and set binlog_row_image = FULL "+restart+".")
	}
	v, ok := s["binlog_row_metadata"]
	if !ok {
		return notReady("cannot be a CDC source: %s %s has no binlog_row_metadata setting", flavorName(info.Flavor), info.Version).
			WithHint("Upgrade to MySQL 8.0 or MariaDB 10.5 or later: without full row metadata the binlog does not name the columns.")
	}
	if !strings.EqualFold(v, "FULL") {
		return notReady("cannot be a CDC source: binlog_row_metadata is %s, not FULL", orNone(v)).
			WithHint("%s", "Run SET GLOBAL binlog_row_metadata = 'FULL' and set binlog_row_metadata = FULL "+restart+
				": without it the binlog's rows carry no column names.")
	}
	if mechanism == MechanismGTID && info.Flavor == FlavorMySQL {
		// MySQL has no BINLOG_GTID_POS: a stream cannot learn the GTID
		// state at a position, so it resumes by file and offset there
		// (stream.go), and 'gtid' would promise what it does not do.
		return notReady("cannot stream by GTID: Sluice reads a MySQL server's binlog by file and offset (GTIDs are used on MariaDB)").
			WithHint("Set replication_mechanism = 'auto' or 'filepos' on the peer.")
	}
	slave, client := grantsReplication(info.Grants)
	if !slave {
		return notReady("cannot be a CDC source: the user lacks the REPLICATION SLAVE privilege").
			WithHint("Run GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the peer's user.")
	}
	if !client {
		return notReady("cannot be a CDC source: the user lacks the REPLICATION CLIENT privilege").
			WithHint("Run GRANT REPLICATION CLIENT ON *.* TO the peer's user (BINLOG MONITOR on MariaDB 10.5 and later).")
	}
	return nil
}

func isOn(v string) bool { return strings.EqualFold(v, "ON") || v == "1" }

// grantsReplication reads SHOW GRANTS lines for the global privileges
// REPLICATION SLAVE (MariaDB also shows it as REPLICATION REPLICA) and
// REPLICATION CLIENT (BINLOG MONITOR on MariaDB 10.5 and later; SUPER on
// MySQL includes it); ALL PRIVILEGES ON *.* has both. Grants through roles
// are not followed (a role's privileges are not on the user's lines).
func grantsReplication(grants []string) (slave, client bool) {
	for _, g := range grants {
		u := strings.ToUpper(g)
		privs, rest, ok := strings.Cut(strings.TrimPrefix(u, "GRANT "), " ON ")
		if !ok || !strings.HasPrefix(strings.TrimSpace(rest), "*.*") {
			continue
		}
		for _, p := range strings.Split(privs, ",") {
			switch strings.TrimSpace(p) {
			case "ALL PRIVILEGES", "ALL":
				slave, client = true, true
			case "REPLICATION SLAVE", "REPLICATION REPLICA":
				slave = true
			case "REPLICATION CLIENT", "BINLOG MONITOR", "SUPER":
				client = true
			}
		}
	}
	return slave, client
}

// minSafeRetentionSeconds is the binlog retention under which Check warns:
// a mirror paused, or an initial load running, for longer than the
// retention loses the binlog it resumes from (a known PeerDB failure).
const minSafeRetentionSeconds = 3 * 24 * 3600

// retention returns how long the server keeps binlogs, in seconds, from
// binlog_expire_logs_seconds (MySQL 8, MariaDB 10.6) or else
// expire_logs_days; 0 means until purged by hand.
func retention(s map[string]string) int64 {
	if v, err := strconv.ParseInt(strings.TrimSpace(s["binlog_expire_logs_seconds"]), 10, 64); err == nil && v > 0 {
		return v
	}
	if d, err := strconv.ParseFloat(strings.TrimSpace(s["expire_logs_days"]), 64); err == nil && d > 0 {
		return int64(d * 86400)
	}
	return 0
}

// retentionNotice reports the binlog retention, as a warning when it is
// shorter than minSafeRetentionSeconds.
func retentionNotice(name string, s map[string]string) *sqlerr.Error {
	secs := retention(s)
	if secs == 0 {
		return sqlerr.Notice("peer %q keeps binlogs until they are purged by hand (expire_logs_days and binlog_expire_logs_seconds are 0)", name)
	}
	text := formatDuration(secs)
	if secs < minSafeRetentionSeconds {
		return sqlerr.Warning("peer %q keeps binlogs for only %s: a mirror paused, or loading, for longer loses its position and needs a full resync", name, text).
			WithHint("Raise binlog_expire_logs_seconds (or expire_logs_days) to a few days at least.")
	}
	return sqlerr.Notice("peer %q keeps binlogs for %s", name, text)
}

// formatDuration renders seconds as days, hours or seconds.
func formatDuration(secs int64) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case secs%86400 == 0:
		return plural(secs/86400, "day")
	case secs%3600 == 0:
		return plural(secs/3600, "hour")
	default:
		return plural(secs, "second")
	}
}
