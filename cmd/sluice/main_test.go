package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSluice builds this command into a temporary directory.
func buildSluice(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// cleanEnv is the test's environment without SLUICE_* settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			env = append(env, kv)
		}
	}
	return env
}

// A second `sluice serve` on a data dir in use (private catalog cluster and
// all) says in one line which Sluice holds it, and exits 1; the first runs on.
func TestSecondServeOnSameDataDir(t *testing.T) {
	bin := buildSluice(t)
	dir := filepath.Join(t.TempDir(), "sluice-data")
	logPath := filepath.Join(t.TempDir(), "first.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	first := exec.Command(bin, "serve", "--data-dir", dir, "--listen", freeAddr(t), "--http-listen", "off")
	first.Env = cleanEnv()
	first.Stdout, first.Stderr = logf, logf
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	defer func() {
		_ = first.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = first.Process.Kill()
			<-exited
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(logPath)
		if bytes.Contains(b, []byte("sluice listening")) {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("first sluice exited: %v\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("first sluice not listening after 2 minutes:\n%s", b)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	second := exec.CommandContext(ctx, bin, "serve", "--data-dir", dir, "--listen", freeAddr(t), "--http-listen", "off")
	second.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	second.Stdout, second.Stderr = &stdout, &stderr
	err = second.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("second sluice: %v, want exit status 1", err)
	}
	want := fmt.Sprintf("sluice: another Sluice (pid %d) is using data dir %s\n", first.Process.Pid, dir)
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("second sluice printed stdout %q, stderr\n%s\nwant only stderr %q", stdout.String(), stderr.String(), want)
	}
	select {
	case err := <-exited:
		t.Errorf("first sluice exited after the second started: %v", err)
	default:
	}
}

// sluice serve starts the HTTP listener of --http-listen: /metrics needs
// SLUICE_PASSWORD (as a bearer token or basic auth) and serves the
// runtime's metrics; SIGTERM stops it with the server, which exits 0.
func TestServeHTTPListener(t *testing.T) {
	bin := buildSluice(t)
	dir := filepath.Join(t.TempDir(), "sluice-data")
	logPath := filepath.Join(t.TempDir(), "sluice.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	httpAddr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--data-dir", dir, "--listen", freeAddr(t), "--http-listen", httpAddr)
	cmd.Env = append(cleanEnv(), "SLUICE_PASSWORD=pw-http")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(logPath)
		if bytes.Contains(b, []byte("sluice listening")) {
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("sluice exited: %v\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice not listening after 2 minutes:\n%s", b)
		}
	}
	get := func(path, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/metrics", "/", "/api/status"} {
		if code, _ := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the password: %d, want 401", path, code)
		}
	}
	// The status page and its data are served from the catalog.
	if code, body := get("/", "Bearer pw-http"); code != http.StatusOK || !strings.Contains(body, "<title>Sluice status") {
		t.Errorf("/ with the password: %d\n%s", code, body)
	}
	if code, body := get("/api/status", "Bearer pw-http"); code != http.StatusOK || !strings.Contains(body, `"mirrors"`) {
		t.Errorf("/api/status with the password: %d\n%s", code, body)
	}
	if code, body := get("/metrics", "Bearer pw-http"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") ||
		!strings.Contains(body, "process_cpu_seconds_total") {
		t.Errorf("/metrics with the password: %d\n%s", code, body)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			b, _ := os.ReadFile(logPath)
			t.Errorf("sluice after SIGTERM: %v\n%s", err, b)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sluice did not stop after SIGTERM")
	}
	if c, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
		c.Close()
		t.Error("the HTTP listener still accepts after the server stopped")
	}
}
