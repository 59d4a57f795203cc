package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// SluiceProcess is a sluice server running as a child process: the real
// binary (cmd/sluice), which crash tests kill with SIGKILL at chosen
// moments, as an operator's machine would. StartSluice runs sluice in the
// test's own process instead, for tests that need no kill.
type SluiceProcess struct {
	t        testing.TB
	args     []string
	env      []string
	port     int
	password string
	cmd      *exec.Cmd
	// LogPath is the file the process writes its log to, across restarts.
	LogPath string
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// SluiceBinary builds cmd/sluice once per test binary and returns its path.
func SluiceBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/sluicedb/sluice/cmd/sluice").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// StartSluiceProcess starts sluice serve on a free loopback port with
// catalogURL as its catalog, password as SLUICE_PASSWORD and a data
// directory of the test's, and waits until it listens. Its HTTP listener is
// off unless extra (more arguments of serve, after the others) sets
// --http-listen. The test's cleanup stops it (SIGTERM) and, when the test
// failed, logs the end of its log.
func StartSluiceProcess(t testing.TB, catalogURL, password string, extra ...string) *SluiceProcess {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &SluiceProcess{t: t, port: port, password: password, LogPath: filepath.Join(t.TempDir(), "sluice.log"),
		args: append([]string{"serve", "--catalog", catalogURL, "--listen", "127.0.0.1:" + strconv.Itoa(port),
			"--data-dir", t.TempDir(), "--log-level", "debug", "--http-listen", "off"}, extra...),
		env: append(os.Environ(), "SLUICE_PASSWORD="+password,
			"SLUICE_SECRET_KEY=0000000000000000000000000000000000000000000000000000000000000001")}
	p.Start()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(p.LogPath); err == nil {
				t.Logf("sluice log:\n%s", LastLines(string(b), 60))
			}
		}
	})
	return p
}

// CatalogURL returns the catalog the process runs on.
func (p *SluiceProcess) CatalogURL() string { return p.args[2] }

// Start starts the process (again) and waits until it listens.
func (p *SluiceProcess) Start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(SluiceBinary(p.t), p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p.port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatal("sluice did not start listening")
}

// Kill sends SIGKILL and waits for the process to die.
func (p *SluiceProcess) Kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// Pid returns the process's id; 0 when it is not running.
func (p *SluiceProcess) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process (SIGSTOP freezes it as a paused VM or a
// long GC pause would, SIGCONT wakes it); nothing when it is not running.
func (p *SluiceProcess) Signal(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Errorf("signal %s to sluice pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// Stop ends the process as an operator does (SIGTERM) and waits for it;
// a frozen process (SIGSTOP) is woken to receive it. Nothing happens when
// it is not running.
func (p *SluiceProcess) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Wait()
	p.cmd = nil
}

// URL returns the URL of the process's front end, as user sluice.
func (p *SluiceProcess) URL() string {
	return fmt.Sprintf("postgres://sluice:%s@127.0.0.1:%d/sluice?sslmode=disable", p.password, p.port)
}

// WaitFor polls cond on a fresh connection to the process until it holds,
// for two minutes at most; then the test fails with what, and detail()
// (when detail is nil: the newest mirror events, LastEvents).
func (p *SluiceProcess) WaitFor(what string, cond func(conn *pgx.Conn) bool, detail func() string) {
	p.t.Helper()
	if detail == nil {
		detail = func() string { return "last events:\n" + p.LastEvents() }
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, p.URL())
		if err == nil {
			ok := cond(conn)
			conn.Close(ctx)
			cancel()
			if ok {
				return
			}
		} else {
			cancel()
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("timed out waiting for %s; %s", what, detail())
}

// LastEvents renders the newest mirror events the process shows (15 at
// most, oldest first), or why it cannot: for a failure message.
func (p *SluiceProcess) LastEvents() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		return err.Error()
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT * FROM (SELECT mirror || ' ' || kind || ': ' || message, at FROM mirror_events ORDER BY at DESC LIMIT 15) e ORDER BY at`)
	if err != nil {
		return err.Error()
	}
	var out []string
	for rows.Next() {
		var line string
		var at time.Time
		if err := rows.Scan(&line, &at); err != nil {
			return err.Error()
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}
