package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse is a throwaway ClickHouse server: its config, data and logs live
// in a temporary directory, it listens on 127.0.0.1 only, on free ports (never
// the package defaults 9000/8123, so a system service cannot get in the way).
// Stop kills it and removes the directory. Safe for concurrent use.
type ClickHouse struct {
	serverProc
	port     int
	httpPort int
	version  string
}

// ClickHouseUser is a password-protected user every test server has, besides
// "default" (no password).
const (
	ClickHouseUser     = "sluice"
	ClickHousePassword = "sluice-test-pw"
)

// ErrNoClickHouse is returned when no ClickHouse server binary is installed.
var ErrNoClickHouse = errors.New("testbed: ClickHouse server binary (clickhouse-server or clickhouse) not found: " +
	"run `make deps` (Debian: apt-get install clickhouse-server), or set SLUICE_CLICKHOUSE_BIN")

// clickHouseDirs are searched after PATH (a non-root PATH often lacks /usr/sbin).
var clickHouseDirs = []string{"/usr/sbin", "/usr/bin"}

// clickHouseCommand finds the server binary: $SLUICE_CLICKHOUSE_BIN, then
// clickhouse-server, then the single clickhouse binary (run as
// `clickhouse server`), in PATH and /usr/sbin, /usr/bin.
func clickHouseCommand() (bin string, pre []string, err error) {
	if b := os.Getenv("SLUICE_CLICKHOUSE_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", nil, fmt.Errorf("%w (SLUICE_CLICKHOUSE_BIN: %v)", ErrNoClickHouse, err)
		}
		if filepath.Base(b) == "clickhouse" {
			return b, []string{"server"}, nil
		}
		return b, nil, nil
	}
	for _, c := range []struct {
		name string
		pre  []string
	}{{"clickhouse-server", nil}, {"clickhouse", []string{"server"}}} {
		if p, err := exec.LookPath(c.name); err == nil {
			return p, c.pre, nil
		}
		for _, dir := range clickHouseDirs {
			p := filepath.Join(dir, c.name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p, c.pre, nil
			}
		}
	}
	return "", nil, ErrNoClickHouse
}

// ClickHouseOptions choose a server's ports; 0 picks a free one.
type ClickHouseOptions struct {
	// Port is the native-protocol (TCP) port.
	Port int
	// HTTPPort is the HTTP port.
	HTTPPort int
}

// StartClickHouse starts a server on free ports in a new temporary directory
// and waits until it answers queries. A missing binary is ErrNoClickHouse
// (tests fail, never skip). The caller stops it with Stop.
func StartClickHouse(ctx context.Context) (*ClickHouse, error) {
	return StartClickHouseWith(ctx, ClickHouseOptions{})
}

// ClickHouseFor starts a server for t (it is up in well under a second),
// stopped when t ends. A missing server binary fails t: make deps
// installs it.
func ClickHouseFor(t testing.TB) *ClickHouse {
	t.Helper()
	ch, err := StartClickHouse(Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Stop)
	return ch
}

// StartClickHouseWith is StartClickHouse on the ports opts chooses (`make
// clickhouse` uses it for a server on a known port).
func StartClickHouseWith(ctx context.Context, opts ClickHouseOptions) (*ClickHouse, error) {
	bin, pre, err := clickHouseCommand()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		ch, err := startClickHouse(ctx, bin, pre, opts)
		if err == nil {
			return ch, nil
		}
		lastErr = err
		// Another process may have taken a port we picked: try new ones.
		if ctx.Err() != nil || !strings.Contains(err.Error(), "Address already in use") ||
			(opts.Port != 0 && opts.HTTPPort != 0) {
			break
		}
	}
	return nil, lastErr
}

func startClickHouse(ctx context.Context, bin string, pre []string, opts ClickHouseOptions) (*ClickHouse, error) {
	dir, err := os.MkdirTemp("", "sluice-test-clickhouse-")
	if err != nil {
		return nil, fmt.Errorf("testbed: temp dir: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if opts.Port != 0 {
		ports[0] = opts.Port
	}
	if opts.HTTPPort != 0 {
		ports[1] = opts.HTTPPort
	}
	ch := &ClickHouse{serverProc: newServerProc(dir), port: ports[0], httpPort: ports[1]}
	if err := ch.writeConfig(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testbed: clickhouse log: %w", err)
	}
	args := append(append([]string{}, pre...), "--config-file="+filepath.Join(dir, "config.xml"))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	// The server must not outlive the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := ch.start(cmd, func() { out.Close() }); err != nil {
		out.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testbed: start %s: %w", bin, err)
	}
	if err := ch.waitReady(ctx); err != nil {
		ch.Stop()
		return nil, err
	}
	return ch, nil
}

// waitReady polls the native port until a query answers, the server exits,
// or 30 s pass.
func (ch *ClickHouse) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-ch.done:
			return fmt.Errorf("testbed: clickhouse exited during start: %s", ch.logTail())
		default:
		}
		v, err := ch.queryVersion(ctx)
		if err == nil {
			ch.version = v
			return nil
		}
		lastErr = err
		select {
		case <-ch.done:
			return fmt.Errorf("testbed: clickhouse exited during start: %s", ch.logTail())
		case <-ctx.Done():
			return fmt.Errorf("testbed: clickhouse not ready: %w (last error: %v); log: %s", ctx.Err(), lastErr, ch.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (ch *ClickHouse) queryVersion(ctx context.Context) (string, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{ch.Addr()},
		Auth:        clickhouse.Auth{Username: "default"},
		DialTimeout: time.Second,
		ReadTimeout: 5 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", err
	}
	return v, nil
}

// logTail returns the end of the server's error log and console output.
func (ch *ClickHouse) logTail() string {
	var b strings.Builder
	for _, name := range []string{"stdout.log", "server.err.log"} {
		data, err := os.ReadFile(filepath.Join(ch.dir, name))
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "\n--- %s ---\n%s", name, data)
	}
	if b.Len() == 0 {
		return "(no log)"
	}
	return b.String()
}

// Stop kills the server and removes its directory (kept when
// SLUICE_KEEP_TEST_CLUSTERS is set). Idempotent; nil-safe.
func (ch *ClickHouse) Stop() {
	if ch != nil {
		ch.stop()
	}
}

// Port returns the native-protocol (TCP) port.
func (ch *ClickHouse) Port() int { return ch.port }

// HTTPPort returns the HTTP port.
func (ch *ClickHouse) HTTPPort() int { return ch.httpPort }

// Addr returns host:port of the native protocol.
func (ch *ClickHouse) Addr() string { return net.JoinHostPort(ch.Host(), strconv.Itoa(ch.port)) }

// Version returns the server's version(), e.g. "18.16.1".
func (ch *ClickHouse) Version() string { return ch.version }

// Open returns a native-protocol connection pool to database db as user
// default. The caller closes it.
func (ch *ClickHouse) Open(db string) (clickhouse.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{
		Addr:        []string{ch.Addr()},
		Auth:        clickhouse.Auth{Username: "default", Database: db},
		DialTimeout: 5 * time.Second,
	})
}

func (ch *ClickHouse) writeConfig() error {
	p := func(name string) string { return filepath.Join(ch.dir, name) + "/" }
	config := `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>` + filepath.Join(ch.dir, "server.log") + `</log>
        <errorlog>` + filepath.Join(ch.dir, "server.err.log") + `</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>` + strconv.Itoa(ch.port) + `</tcp_port>
    <http_port>` + strconv.Itoa(ch.httpPort) + `</http_port>
    <path>` + p("data") + `</path>
    <tmp_path>` + p("tmp") + `</tmp_path>
    <user_files_path>` + p("user_files") + `</user_files_path>
    <format_schema_path>` + p("format_schemas") + `</format_schema_path>
    <users_config>` + filepath.Join(ch.dir, "users.xml") + `</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
`
	users := `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <` + ClickHouseUser + `>
            <password>` + ClickHousePassword + `</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </` + ClickHouseUser + `>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(ch.dir, "config.xml"), []byte(config), 0o600); err != nil {
		return fmt.Errorf("testbed: write clickhouse config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(ch.dir, "users.xml"), []byte(users), 0o600); err != nil {
		return fmt.Errorf("testbed: write clickhouse users: %w", err)
	}
	return nil
}

// freePorts returns n distinct free loopback ports. They are free when
// picked; a race with another process is handled by retrying the start.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testbed: pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
