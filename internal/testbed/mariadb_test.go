package testbed

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMariaDBStartQueryStop starts a server with the defaults, checks the
// binlog settings a CDC source needs are in force, and that Stop ends it and
// removes its files.
func TestMariaDBStartQueryStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	m, err := StartMariaDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	t.Logf("MariaDB %s up on %s in %v (dir %s)", m.Version(), m.Addr(), time.Since(start), m.Dir())
	if m.Port() == 3306 || !strings.Contains(m.Version(), "MariaDB") {
		t.Errorf("port %d, version %q", m.Port(), m.Version())
	}
	conn, err := m.Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := map[string]string{"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
		"binlog_row_metadata": "FULL", "server_id": "1", "gtid_strict_mode": "ON"}
	for name, v := range want {
		r, err := conn.Execute("SELECT @@" + name)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := r.GetString(0, 0)
		if got != v && !(v == "ON" && got == "1") {
			t.Errorf("@@%s = %q, want %q", name, got, v)
		}
	}
	m.Exec(t, "", "CREATE DATABASE app", "CREATE TABLE app.t (id int primary key)", "INSERT INTO app.t VALUES (1)")
	r, err := conn.Execute("SELECT @@gtid_binlog_pos")
	if err != nil {
		t.Fatal(err)
	}
	if pos, _ := r.GetString(0, 0); !strings.HasPrefix(pos, "0-1-") {
		t.Errorf("gtid_binlog_pos = %q, want 0-1-N", pos)
	}
	if os.Geteuid() == 0 {
		st, err := os.Stat(m.Dir() + "/data")
		if err != nil {
			t.Fatal(err)
		}
		if st.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Errorf("data dir owned by root: the server must run unprivileged")
		}
	}

	pid := m.cmd.Process.Pid
	dir := m.Dir()
	m.Stop()
	m.Stop() // idempotent
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("server pid %d still alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) && os.Getenv("SLUICE_KEEP_TEST_CLUSTERS") == "" {
		t.Errorf("dir %s not removed: %v", dir, err)
	}
}

// TestMariaDBWith starts a server with MariaDB's own binlog defaults (no
// ROW format, no full metadata, no binlog), as the source's checks meet.
func TestMariaDBWith(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := StartMariaDBWith(ctx, map[string]string{"log_bin": "", "binlog_format": "MIXED", "binlog_row_metadata": ""})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	conn, err := m.Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := conn.Execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_metadata")
	if err != nil {
		t.Fatal(err)
	}
	logBin, _ := r.GetInt(0, 0)
	format, _ := r.GetString(0, 1)
	meta, _ := r.GetString(0, 2)
	if logBin != 0 || format != "MIXED" || meta != "NO_LOG" {
		t.Errorf("log_bin=%d binlog_format=%s binlog_row_metadata=%s, want 0 MIXED NO_LOG", logBin, format, meta)
	}
}

func TestMariaDBMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := mariaDBDirs
	mariaDBDirs = []string{t.TempDir()}
	defer func() { mariaDBDirs = saved }()
	if _, err := StartMariaDB(context.Background()); !errors.Is(err, ErrNoMariaDB) || !strings.Contains(err.Error(), "mariadb-server") {
		t.Fatalf("no binary anywhere: err = %v, want ErrNoMariaDB naming the package", err)
	}
}
