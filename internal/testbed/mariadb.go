package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/sluicedb/sluice/internal/pgcluster"
)

// MariaDB is a throwaway MariaDB server for the MySQL source's tests: its
// data directory (made by mariadb-install-db), socket, binlogs and error log
// live in a temporary directory, it listens on 127.0.0.1 only, on a free
// port (never 3306, so a system service cannot get in the way). By default
// it writes the binlog a CDC source needs (see MariaDBDefaults). When the
// tests run as root the server runs as an unprivileged user (mysql, else
// nobody), as pgcluster does for Postgres: a test must not leave files only
// root owns, and mariadbd refuses root without --user. Stop kills it and
// removes the directory. Safe for concurrent use.
type MariaDB struct {
	serverProc
	port    int
	version string
	cred    *syscall.Credential
}

// MariaDBUser is the test server's administrator over TCP (all privileges,
// with grant option); MariaDBPassword is its password.
const (
	MariaDBUser     = "root"
	MariaDBPassword = "sluice-test-pw"
)

// ErrNoMariaDB is returned when the MariaDB server binaries are not
// installed.
var ErrNoMariaDB = errors.New("testbed: MariaDB server (mariadbd, mariadb-install-db) not found: " +
	"run `make deps` or `.ci/install-deps mariadb` (Debian: apt-get install mariadb-server)")

// mariaDBDirs are searched after PATH (a non-root PATH often lacks /usr/sbin).
var mariaDBDirs = []string{"/usr/sbin", "/usr/bin"}

// MariaDBDefaults are the server settings every test server starts with,
// besides its paths and port: a row-based binlog with full row images and
// full metadata (what the MySQL source requires), a server id, strict GTID
// mode, and durability off for speed. StartMariaDBWith overrides them.
var MariaDBDefaults = map[string]string{
	"log_bin":                        "binlog",
	"binlog_format":                  "ROW",
	"binlog_row_image":               "FULL",
	"binlog_row_metadata":            "FULL",
	"server_id":                      "1",
	"gtid_strict_mode":               "ON",
	"gtid_domain_id":                 "0",
	"character_set_server":           "utf8mb4",
	"collation_server":               "utf8mb4_general_ci",
	"default_time_zone":              "+00:00",
	"innodb_buffer_pool_size":        "64M",
	"innodb_log_file_size":           "16M",
	"innodb_flush_log_at_trx_commit": "0",
	"sync_binlog":                    "0",
	"max_connections":                "200",
	"skip_name_resolve":              "ON",
	"performance_schema":             "OFF",
}

// mariaDBBinaries finds mariadbd and mariadb-install-db in PATH, then in
// mariaDBDirs.
func mariaDBBinaries() (server, installDB string, err error) {
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range mariaDBDirs {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	server, installDB = find("mariadbd"), find("mariadb-install-db")
	if server == "" || installDB == "" {
		return "", "", ErrNoMariaDB
	}
	return server, installDB, nil
}

// StartMariaDB starts a server with MariaDBDefaults in a new temporary
// directory and waits until MariaDBUser can connect over TCP. A missing
// installation is ErrNoMariaDB (tests fail, never skip). The caller stops
// it with Stop.
func StartMariaDB(ctx context.Context) (*MariaDB, error) {
	return StartMariaDBWith(ctx, nil)
}

// StartMariaDBWith is StartMariaDB with settings (server variable names,
// with underscores, to values) that override MariaDBDefaults; an empty
// value leaves the setting out (settings["log_bin"] = "" starts a server
// without a binlog). Tests of the source's checks use it.
func StartMariaDBWith(ctx context.Context, settings map[string]string) (*MariaDB, error) {
	server, installDB, err := mariaDBBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := mariaDBCredential()
	if err != nil {
		return nil, err
	}
	all := make(map[string]string, len(MariaDBDefaults)+len(settings))
	for k, v := range MariaDBDefaults {
		all[k] = v
	}
	for k, v := range settings {
		all[k] = v
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		m, err := startMariaDB(ctx, server, installDB, cred, all)
		if err == nil {
			return m, nil
		}
		lastErr = err
		// Another process may have taken the port we picked: try another.
		if ctx.Err() != nil || !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	return nil, lastErr
}

// mariaDBCredential returns the unprivileged user to run the server as
// when we are root (mysql, which Debian's package makes, else nobody).
func mariaDBCredential() (*syscall.Credential, error) {
	cred, err := pgcluster.Unprivileged("mysql", "nobody")
	if err != nil {
		return nil, fmt.Errorf("testbed: MariaDB: %w", err)
	}
	return cred, nil
}

func startMariaDB(ctx context.Context, server, installDB string, cred *syscall.Credential, settings map[string]string) (*MariaDB, error) {
	dir, err := os.MkdirTemp("", "sluice-test-mariadb-")
	if err != nil {
		return nil, fmt.Errorf("testbed: temp dir: %w", err)
	}
	m := &MariaDB{serverProc: newServerProc(dir), cred: cred}
	fail := func(err error) (*MariaDB, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("testbed: chown %s: %w", dir, err))
		}
	}
	// The init file runs at every start-up: it gives the TCP administrator
	// its password (mariadb-install-db makes root@127.0.0.1 without one),
	// and is kept out of the binlog, which thus starts empty.
	initSQL := fmt.Sprintf("SET sql_log_bin = 0;\n"+
		"CREATE OR REPLACE USER '%[1]s'@'127.0.0.1' IDENTIFIED BY '%[2]s';\n"+
		"GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'127.0.0.1' WITH GRANT OPTION;\n", MariaDBUser, MariaDBPassword)
	if err := os.WriteFile(m.path("init.sql"), []byte(initSQL), 0o644); err != nil {
		return fail(fmt.Errorf("testbed: write init file: %w", err))
	}
	install := exec.CommandContext(ctx, installDB, "--no-defaults", "--datadir="+m.path("data"),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	install.Dir = dir
	install.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := install.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("testbed: mariadb-install-db: %w\n%s", err, tailString(string(out), 2000)))
	}
	port, err := freePorts(1)
	if err != nil {
		return fail(err)
	}
	m.port = port[0]
	args := []string{"--no-defaults", "--datadir=" + m.path("data"), "--socket=" + m.path("mysqld.sock"),
		"--port=" + strconv.Itoa(m.port), "--bind-address=127.0.0.1", "--pid-file=" + m.path("mysqld.pid"),
		"--log-error=" + m.path("error.log"), "--init-file=" + m.path("init.sql"), "--tmpdir=" + dir}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := settings[k]
		if v == "" {
			continue
		}
		if k == "log_bin" && !strings.HasPrefix(v, "/") {
			v = m.path("data/" + v) // the binlog's base name, in the data directory
		}
		args = append(args, "--"+strings.ReplaceAll(k, "_", "-")+"="+v)
	}
	cmd := exec.Command(server, args...)
	cmd.Dir = dir
	// The server must not outlive the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := m.start(cmd, nil); err != nil {
		return fail(fmt.Errorf("testbed: start %s: %w", server, err))
	}
	if err := m.waitReady(ctx); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// waitReady polls the TCP port until MariaDBUser can connect, the server
// exits, or 60 s pass.
func (m *MariaDB) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var lastErr error
	start := time.Now()
	for {
		select {
		case <-m.done:
			return fmt.Errorf("testbed: mariadbd exited during start: %s", m.logTail())
		default:
		}
		conn, err := m.Connect(ctx, "")
		if err == nil {
			m.version = conn.GetServerVersion()
			conn.Close()
			return nil
		}
		lastErr = err
		if strings.Contains(err.Error(), "Access denied") && time.Since(start) > 10*time.Second {
			return fmt.Errorf("testbed: mariadbd refuses %s: %v (the init file failed?); log: %s", MariaDBUser, err, m.logTail())
		}
		select {
		case <-m.done:
			return fmt.Errorf("testbed: mariadbd exited during start: %s", m.logTail())
		case <-ctx.Done():
			return fmt.Errorf("testbed: mariadbd not ready: %w (last error: %v); log: %s", ctx.Err(), lastErr, m.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Connect opens a connection to database db ("" for none) as MariaDBUser
// over TCP. The caller closes it.
func (m *MariaDB) Connect(ctx context.Context, db string) (*client.Conn, error) {
	return client.ConnectWithContext(ctx, m.Addr(), MariaDBUser, MariaDBPassword, db, 5*time.Second)
}

// Exec runs each of sqls on database db ("" for none) as MariaDBUser, and
// fails the test on error.
func (m *MariaDB) Exec(t interface {
	Helper()
	Fatalf(string, ...any)
}, db string, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := m.Connect(ctx, db)
	if err != nil {
		t.Fatalf("testbed: connect to MariaDB: %v", err)
	}
	defer conn.Close()
	for _, q := range sqls {
		if _, err := conn.Execute(q); err != nil {
			t.Fatalf("testbed: MariaDB: %v\n%s", err, q)
		}
	}
}

func (m *MariaDB) path(name string) string { return filepath.Join(m.dir, name) }

// logTail returns the end of the server's error log.
func (m *MariaDB) logTail() string {
	data, err := os.ReadFile(m.path("error.log"))
	if err != nil || len(data) == 0 {
		return "(no log)"
	}
	return "\n--- error.log ---\n" + tailString(string(data), 2000)
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Stop kills the server and removes its directory (kept when
// SLUICE_KEEP_TEST_CLUSTERS is set). Idempotent; nil-safe.
func (m *MariaDB) Stop() {
	if m != nil {
		m.stop()
	}
}

// Port returns the TCP port.
func (m *MariaDB) Port() int { return m.port }

// Addr returns host:port.
func (m *MariaDB) Addr() string { return net.JoinHostPort(m.Host(), strconv.Itoa(m.port)) }

// Version returns the server's version string, e.g. "10.11.19-MariaDB-0+deb12u1-log".
func (m *MariaDB) Version() string { return m.version }
