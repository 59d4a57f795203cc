package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The command `make clickhouse` runs starts a server on the port it is given,
// prints the CREATE PEER line for that port, has the database the line names,
// and on Ctrl-C stops the server and deletes its directory.
func TestThrowawayServer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sluice-clickhouse")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port := freePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--http-port", strconv.Itoa(freePort(t)))
	cmd.Env = append(os.Environ(), "SLUICE_KEEP_TEST_CLUSTERS=")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out []string
	var dir, peer string
	timeout := time.After(time.Minute)
	for peer == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("sluice-clickhouse ended before printing CREATE PEER:\n%s", strings.Join(out, "\n"))
			}
			out = append(out, line)
			if f := strings.Fields(line); len(f) == 4 && f[0] == "data" {
				dir = f[3]
			}
			if strings.Contains(line, "CREATE PEER") {
				peer = strings.TrimSpace(line)
			}
		case <-timeout:
			t.Fatalf("no CREATE PEER line within a minute:\n%s", strings.Join(out, "\n"))
		}
	}
	want := fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = '%d', database = 'analytics');", port)
	if peer != want {
		t.Errorf("printed %q, want %q", peer, want)
	}
	if !regexp.MustCompile(`^ClickHouse \d+\.\d+`).MatchString(out[0]) {
		t.Errorf("first line %q does not give the server's version", out[0])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))},
		Auth: clickhouse.Auth{Username: "default", Database: "analytics"}})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	err = conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = 'analytics'").Scan(&n)
	conn.Close()
	if err != nil || n != 1 {
		t.Fatalf("database analytics on port %d: count %d, err %v", port, n, err)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after Ctrl-C: %v, want exit 0", err)
	}
	if dir == "" {
		t.Errorf("no data directory printed:\n%s", strings.Join(out, "\n"))
	} else if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s still there after Ctrl-C: %v", dir, err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Ctrl-C", port)
	}
}
