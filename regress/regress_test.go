package regress

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

var update = flag.Bool("update", false, "rewrite expected/*.out with the actual output (read the result before committing it)")

// The peer cluster's logins used by the SQL files. They are not superusers:
// the files work as an ordinary owner of their database would.
const (
	peerUser      = "sluice_regress_owner"
	peerPassword  = "regress-owner-pw"
	plainUser     = "sluice_regress_plain" // no REPLICATION privilege
	plainPassword = "regress-plain-pw"

	sluicePassword = "regress-sluice-pw"
	fileTimeout    = 2 * time.Minute
)

// Shared by every file: the cluster holding the catalogs (a database per
// Sluice server), the cluster the peers point at (a database per file), and
// a ClickHouse server (a database per file too).
var (
	catalogCluster *testbed.Cluster
	peerCluster    *testbed.Cluster
	peerVersion    string // the peer's server_version, e.g. "15.18"
	chServer       *testbed.ClickHouse
)

func TestMain(m *testing.M) {
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err := setUp(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "regress: set up:", err)
		peerCluster.Stop()
		catalogCluster.Stop()
		chServer.Stop()
		os.Exit(1)
	}
	code := m.Run()
	peerCluster.Stop()
	catalogCluster.Stop()
	chServer.Stop()
	os.Exit(code)
}

// setUp starts both clusters and the ClickHouse server, creates the peer
// logins and reads the peer's version. On error the servers started so far
// are left for TestMain to stop.
func setUp(ctx context.Context) error {
	var (
		wg              sync.WaitGroup
		catErr, peerErr error
		chErr           error
		cat, other      *testbed.Cluster
		ch              *testbed.ClickHouse
	)
	wg.Add(3)
	go func() { defer wg.Done(); cat, catErr = testbed.Start(ctx, "regress-catalog") }()
	go func() { defer wg.Done(); other, peerErr = testbed.Start(ctx, "regress-peer") }()
	go func() { defer wg.Done(); ch, chErr = testbed.StartClickHouse(ctx) }()
	wg.Wait()
	catalogCluster, peerCluster, chServer = cat, other, ch
	if err := errors.Join(catErr, peerErr, chErr); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, peerCluster.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to peer cluster: %w", err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'", peerUser, peerPassword),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", plainUser, plainPassword),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return fmt.Errorf("read peer version: %w", err)
	}
	peerVersion = strings.Fields(v)[0] // "15.18 (Debian 15.18-0+deb12u1)"
	return nil
}

// TestRegress runs every sql/*.sql file as a subtest named after the file.
func TestRegress(t *testing.T) {
	psql, err := findPsql()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("sql", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no regress/sql/*.sql files")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".sql")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runFile(t, psql, name)
		})
	}
}

// runFile runs sql/NAME.sql against a fresh server and peer database and
// compares the output with expected/NAME.out (or rewrites it with -update).
func runFile(t *testing.T, psql, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), fileTimeout)
	defer cancel()

	s, err := testbed.StartSluice(ctx, catalogCluster, testbed.Options{Password: sluicePassword})
	if err != nil {
		t.Fatalf("start sluice: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop sluice: %v", err)
		}
	})
	db := newPeerDB(t, name)
	db2 := newPeerDB(t, name+"_dst")
	chDB := newClickHouseDB(t, name)

	vars := []variable{
		{"peer_host", "127.0.0.1"},
		{"peer_port", strconv.Itoa(peerCluster.Port())},
		{"peer_user", peerUser},
		{"peer_password", peerPassword},
		{"peer_db", db},
		{"peer_db2", db2},
		{"peer_plain_user", plainUser},
		{"peer_plain_password", plainPassword},
		{"ch_port", strconv.Itoa(chServer.Port())},
		{"ch_db", chDB},
	}
	in, err := os.Open(filepath.Join("sql", name+".sql"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()

	args := []string{"-X", "-a", "-q", "-v", "ON_ERROR_STOP=0"}
	for _, v := range vars {
		args = append(args, "-v", v.name+"="+v.value)
	}
	cmd := exec.CommandContext(ctx, psql, args...)
	cmd.Stdin = in
	cmd.Env = psqlEnv(s)
	cmd.WaitDelay = 5 * time.Second
	// One writer for both streams: os/exec then gives psql a single pipe, so
	// notices and errors land between the statements that caused them.
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	runErr := cmd.Run()

	// Values that vary between runs become placeholders; the server's own
	// port too, in case anything ever prints it.
	subs := append(vars[:len(vars):len(vars)], variable{"pg_version", peerVersion}, variable{"sluice_port", strconv.Itoa(s.Port)})
	actual := scrub(dropLocations(out.String()), subs)

	expectedPath := filepath.Join("expected", name+".out")
	resultPath := filepath.Join("results", name+".out")
	if runErr != nil {
		// psql exits non-zero only when it could not run the file (lost
		// connection, bad option): the output says why.
		writeResult(t, resultPath, actual)
		t.Fatalf("psql %s: %v (output in %s):\n%s", name, runErr, resultPath, actual)
	}
	if *update {
		if err := os.WriteFile(expectedPath, []byte(actual), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(resultPath)
		return
	}
	expected, err := os.ReadFile(expectedPath)
	if err != nil {
		writeResult(t, resultPath, actual)
		t.Fatalf("%v (run with -update to create it; actual output in %s)", err, resultPath)
	}
	if string(expected) == actual {
		_ = os.Remove(resultPath)
		return
	}
	writeResult(t, resultPath, actual)
	t.Errorf("output differs from %s (actual output in %s):\n%s",
		expectedPath, resultPath, unifiedDiff(expectedPath, resultPath, string(expected), actual))
}

// newPeerDB creates the database regress_NAME on the peer cluster, owned by
// the peer login, and drops it when the test ends. The name is fixed, not
// numbered as testbed's NewDB does, so that its length (which decides how
// psql aligns columns and cuts long lines around an error) never varies.
func newPeerDB(t *testing.T, name string) string {
	t.Helper()
	db := "regress_" + name
	ident := pgx.Identifier{db}.Sanitize()
	peerCluster.Exec(t, "postgres", "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	peerCluster.Exec(t, "postgres", "CREATE DATABASE "+ident+" OWNER "+peerUser)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, peerCluster.URL("postgres"))
		if err != nil {
			t.Errorf("drop %s: %v", db, err)
			return
		}
		defer conn.Close(ctx)
		testbed.DropSlots(ctx, conn, db)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	})
	return db
}

// newClickHouseDB creates the database regress_ch_NAME on the ClickHouse server
// and drops it when the test ends.
func newClickHouseDB(t *testing.T, name string) string {
	t.Helper()
	db := "regress_ch_" + name
	conn, err := chServer.Open("default")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop ClickHouse database %s: %v", db, err)
		}
		conn.Close()
	})
	for _, sql := range []string{"DROP DATABASE IF EXISTS " + db, "CREATE DATABASE " + db} {
		if err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return db
}

func writeResult(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// findPsql returns the psql client: from PATH, else the newest
// /usr/lib/postgresql/*/bin/psql.
func findPsql() (string, error) {
	if p, err := exec.LookPath("psql"); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	sort.Slice(matches, func(i, j int) bool { return majorOf(matches[i]) > majorOf(matches[j]) })
	if len(matches) > 0 {
		return matches[0], nil
	}
	return "", errors.New("regress: the psql client was not found on PATH nor in /usr/lib/postgresql/*/bin: " +
		"install it (e.g. apt-get install postgresql-client, or `make deps`)")
}

// majorOf returns the major version in a path like /usr/lib/postgresql/15/bin/psql.
func majorOf(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// psqlEnv is the process environment for psql: the caller's, less anything
// that changes how libpq connects or how psql formats (PG*, locale), plus the
// connection to s in a fixed time zone and the C locale.
func psqlEnv(s *testbed.Sluice) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" ||
			k == "PSQLRC" || k == "PSQL_HISTORY" || k == "PAGER" || k == "PSQL_PAGER" || k == "COLUMNS" {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"PGHOST="+s.Host,
		"PGPORT="+strconv.Itoa(s.Port),
		"PGUSER="+s.User,
		"PGPASSWORD="+s.Password,
		"PGDATABASE=sluice",
		"PGSSLMODE=disable",
		"PGCONNECT_TIMEOUT=10",
		"PGAPPNAME=sluice_regress",
		"PGTZ=UTC",
		"LANG=C",
		"LC_ALL=C",
	)
}

// dropLocations removes the LOCATION lines psql prints in verbose mode for
// errors relayed from Postgres: they name a source file and line of the
// Postgres server, which change with every minor release.
func dropLocations(out string) string {
	lines := strings.SplitAfter(out, "\n")
	kept := lines[:0]
	for _, l := range lines {
		if !strings.HasPrefix(l, "LOCATION:  ") {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "")
}

// variable is a psql variable given to every file.
type variable struct{ name, value string }

// scrub replaces each variable's value in out by <name>, longest value
// first, where it stands as a whole word (not inside a longer number or
// name), so that a port number is not replaced inside an unrelated value.
func scrub(out string, vars []variable) string {
	vars = append([]variable(nil), vars...)
	sort.SliceStable(vars, func(i, j int) bool { return len(vars[i].value) > len(vars[j].value) })
	for _, v := range vars {
		if v.value != "" {
			out = replaceWord(out, v.value, "<"+v.name+">")
		}
	}
	return out
}

// replaceWord replaces every occurrence of old in s that is not preceded or
// followed by a letter, digit or underscore.
func replaceWord(s, old, repl string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := i + len(old)
		if (i > 0 && isWordByte(s[i-1])) || (j < len(s) && isWordByte(s[j])) {
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s = s[j:]
	}
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
