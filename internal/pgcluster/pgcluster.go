// Package pgcluster creates, starts and stops private Postgres clusters with
// the locally installed server binaries (initdb, postgres). Sluice uses it for
// its zero-config catalog, and the test bed uses it for throwaway source and
// destination clusters.
//
// When the calling process runs as root, initdb and postgres run as an
// unprivileged system user (postgres, else nobody), because both refuse to run
// as root. The cluster listens on 127.0.0.1 only, on the chosen port, with no
// Unix socket.
package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Config describes a cluster.
type Config struct {
	// Dir is the data directory. It is created by Init when missing.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one at Start.
	Port int
	// Superuser is the name of the bootstrap superuser (default "postgres").
	Superuser string
	// Password is the superuser's password; host logins use scram-sha-256.
	Password string
	// Settings are extra server settings passed as -c name=value.
	Settings map[string]string
	// LogFile receives the server's log (default Dir/../NAME.log is not
	// assumed: empty means Dir + ".log").
	LogFile string
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("pgcluster: data directory is required")
	}
	if c.Password == "" {
		return errors.New("pgcluster: superuser password is required")
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("pgcluster: invalid port %d", c.Port)
	}
	return nil
}

// Cluster is a running (or stopped) cluster. Methods are safe for concurrent use.
type Cluster struct {
	cfg  Config
	bin  string
	cred *syscall.Credential

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// ErrMissingBinaries is returned when no Postgres server binaries are installed.
var ErrMissingBinaries = errors.New("Postgres server binaries (initdb, postgres) not found: " +
	"install them, e.g. on Debian/Ubuntu `apt-get install postgresql`, or give --catalog a Postgres URL")

// BinDir finds the directory holding initdb and postgres: $SLUICE_PG_BINDIR,
// then PATH, then the newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if d := os.Getenv("SLUICE_PG_BINDIR"); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", ErrMissingBinaries
}

func version(initdbPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdbPath))))
	return v
}

// New prepares a cluster handle; it does not touch the disk.
func New(cfg Config) (*Cluster, error) {
	if cfg.Superuser == "" {
		cfg.Superuser = "postgres"
	}
	if cfg.LogFile == "" {
		cfg.LogFile = strings.TrimRight(cfg.Dir, "/") + ".log"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	return &Cluster{cfg: cfg, bin: bin, cred: cred}, nil
}

// credential returns the unprivileged user to run as when we are root.
func credential() (*syscall.Credential, error) {
	cred, err := Unprivileged("postgres", "nobody")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	return cred, nil
}

// Unprivileged returns, when the process runs as root, the credential of
// the first of users that exists, for a server that refuses to run as root
// (postgres, mariadbd) and must not leave files only root owns; nil when
// the process is not root. No such user is an error naming them.
func Unprivileged(users ...string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range users {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, fmt.Errorf("running as root and no unprivileged user (%s) to run the server as", strings.Join(users, " or "))
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

// Initialized reports whether Dir already holds a cluster.
func (c *Cluster) Initialized() bool {
	_, err := os.Stat(filepath.Join(c.cfg.Dir, "PG_VERSION"))
	return err == nil
}

// Init runs initdb for Dir. It is an error if Dir already holds a cluster.
// initdb writes into a scratch directory renamed into place on success, so a
// run killed half-way never leaves a half-made cluster behind.
func (c *Cluster) Init(ctx context.Context) error {
	if c.Initialized() {
		return fmt.Errorf("pgcluster: %s already holds a cluster", c.cfg.Dir)
	}
	scratch := strings.TrimRight(c.cfg.Dir, "/") + ".initdb"
	if err := os.RemoveAll(scratch); err != nil {
		return fmt.Errorf("pgcluster: remove stale %s: %w", scratch, err)
	}
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return fmt.Errorf("pgcluster: create data dir: %w", err)
	}
	if err := c.chown(scratch); err != nil {
		return fmt.Errorf("pgcluster: chown data dir: %w", err)
	}
	// The server user must be able to reach the data dir through its parents.
	if c.cred != nil {
		for p := filepath.Dir(scratch); p != "/" && p != "."; p = filepath.Dir(p) {
			if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(p, st.Mode().Perm()|0o011); err != nil {
					return fmt.Errorf("pgcluster: make %s traversable: %w", p, err)
				}
			}
		}
	}
	pwfile, err := os.CreateTemp("", "sluice-pw-*")
	if err != nil {
		return fmt.Errorf("pgcluster: write password file: %w", err)
	}
	defer os.Remove(pwfile.Name())
	if _, err := pwfile.WriteString(c.cfg.Password + "\n"); err != nil {
		return fmt.Errorf("pgcluster: write password file: %w", err)
	}
	pwfile.Close()
	if err := c.chown(pwfile.Name()); err != nil {
		return fmt.Errorf("pgcluster: chown password file: %w", err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "initdb"),
		"-D", scratch, "-U", c.cfg.Superuser, "--pwfile", pwfile.Name(),
		"--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(scratch)
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
	}
	if err := os.Rename(scratch, c.cfg.Dir); err != nil {
		return fmt.Errorf("pgcluster: move new cluster into place: %w", err)
	}
	return nil
}

// Start starts the server and waits until it accepts connections. With
// Config.Port 0 it picks a free port (retrying on a lost race).
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("pgcluster: already started")
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := c.cfg.Port
		if port == 0 {
			p, err := freePort()
			if err != nil {
				return err
			}
			port = p
		}
		err := c.start(ctx, port)
		if err == nil {
			c.cfg.Port = port
			return nil
		}
		lastErr = err
		if c.cfg.Port != 0 || ctx.Err() != nil {
			break
		}
	}
	return lastErr
}

func (c *Cluster) start(ctx context.Context, port int) error {
	// A server killed with its parent may leave a stale pid file; postgres
	// itself checks whether that pid is still a postmaster.
	args := []string{"-D", c.cfg.Dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="}
	keys := make([]string, 0, len(c.cfg.Settings))
	for k := range c.cfg.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+c.cfg.Settings[k])
	}
	logf, err := os.OpenFile(c.cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgcluster: open log: %w", err)
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = "/"
	// Fast shutdown if we die: the server must not outlive its owner.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	url := c.urlFor(port, "postgres")
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("pgcluster: postgres exited during start-up; log %s:\n%s", c.cfg.LogFile, tail(c.cfg.LogFile, 15))
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(cctx, url)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			c.cmd, c.done = cmd, done
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-done
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pgcluster: postgres did not accept connections within 60s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop shuts the server down (fast shutdown) and waits for it. Idempotent.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		<-c.done
	}
	c.cmd = nil
	return nil
}

// Kill stops the server abruptly (SIGKILL), as a crash would. Idempotent.
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	c.cmd = nil
}

// Port returns the TCP port (known after Start when Config.Port was 0).
func (c *Cluster) Port() int { return c.cfg.Port }

// Superuser returns the bootstrap superuser's name.
func (c *Cluster) Superuser() string { return c.cfg.Superuser }

// Password returns the superuser's password.
func (c *Cluster) Password() string { return c.cfg.Password }

// URL returns a connection URL for database db as the superuser.
func (c *Cluster) URL(db string) string { return c.urlFor(c.cfg.Port, db) }

func (c *Cluster) urlFor(port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.cfg.Superuser, c.cfg.Password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}
