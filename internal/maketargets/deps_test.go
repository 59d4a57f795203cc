package maketargets

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is where the Makefile is, seen from this package's directory.
const repoRoot = "../.."

// sysroot is a fake Debian file system for .ci/install-deps (through
// SLUICE_DEPS_SYSROOT): Postgres 15 server binaries, psql and gcc where Debian puts
// them, clickhouse-server and MariaDB's mariadbd (/usr/sbin),
// mariadb-install-db and chromium (/usr/bin) only when withServers. It returns the
// root and a PATH holding only bash and a fake `id` saying uid 1000, so the
// script never finds the machine's own binaries and never runs apt-get.
func sysroot(t *testing.T, withServers bool) (root, path string) {
	t.Helper()
	root = t.TempDir()
	files := []string{"usr/lib/postgresql/15/bin/initdb", "usr/lib/postgresql/15/bin/postgres",
		"usr/bin/gcc", "usr/bin/psql"}
	if withServers {
		files = append(files, "usr/sbin/clickhouse-server", "usr/sbin/mariadbd", "usr/bin/mariadb-install-db",
			"usr/bin/chromium")
	}
	for _, f := range files {
		writeExec(t, filepath.Join(root, f), "#!/bin/sh\nexit 0\n")
	}
	path = t.TempDir()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bash, filepath.Join(path, "bash")); err != nil {
		t.Fatal(err)
	}
	writeExec(t, filepath.Join(path, "id"), "#!"+bash+"\necho 1000\n")
	return root, path
}

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// depsCommands returns the .ci/install-deps command lines `make -n target`
// would run.
func depsCommands(t *testing.T, target string) [][]string {
	t.Helper()
	cmd := exec.Command("make", "-n", target)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", target, err, out)
	}
	var cmds [][]string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasSuffix(f[0], ".ci/install-deps") {
			cmds = append(cmds, f)
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("make -n %s runs no .ci/install-deps:\n%s", target, out)
	}
	return cmds
}

// runDeps runs an install-deps command line in the fake sysroot, with
// --check when check is set.
func runDeps(t *testing.T, root, path string, check bool, argv []string) (int, string) {
	t.Helper()
	args := append([]string{}, argv[1:]...)
	if check {
		args = append([]string{"--check"}, args...)
	}
	cmd := exec.Command(argv[0], args...) // relative to cmd.Dir
	cmd.Dir = repoRoot
	cmd.Env = []string{"PATH=" + path, "SLUICE_DEPS_SYSROOT=" + root, "HOME=" + t.TempDir()}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return 0, out.String()
}

// make run needs the Postgres server binaries and gcc, never ClickHouse.
func TestMakeRunNeedsNoClickHouse(t *testing.T) {
	root, path := sysroot(t, false)
	for _, argv := range depsCommands(t, "run") {
		for _, check := range []bool{true, false} {
			code, out := runDeps(t, root, path, check, argv)
			if code != 0 || strings.Contains(out, "clickhouse") {
				t.Errorf("make run's %v (check %v) without ClickHouse installed: exit %d, output %q; want exit 0 asking for nothing",
					argv, check, code, out)
			}
		}
	}
}

// make test and make clickhouse need clickhouse-server; a non-root user is
// told the apt-get command, and packages already there are not asked for.
func TestMakeTestNeedsClickHouse(t *testing.T) {
	root, path := sysroot(t, false)
	for _, argv := range append(depsCommands(t, "test"), depsCommands(t, "clickhouse")...) {
		for _, check := range []bool{true, false} {
			code, out := runDeps(t, root, path, check, argv)
			want := "sudo apt-get install -y clickhouse-server"
			if code == 0 || !strings.Contains(out, want) || strings.Contains(out, "postgresql ") {
				t.Errorf("%v (check %v) without ClickHouse: exit %d, output %q; want a failure saying %q and nothing else missing",
					argv, check, code, out, want)
			}
		}
	}
}

// .ci/install-deps mariadb and make test need mariadb-server (the MySQL
// source's tests); make run does not (TestMakeRunNeedsNoClickHouse).
func TestDepsMariaDB(t *testing.T) {
	root, path := sysroot(t, false)
	argvs := append(depsCommands(t, "test"), []string{"./.ci/install-deps", "mariadb"})
	for _, argv := range argvs {
		code, out := runDeps(t, root, path, true, argv)
		if code == 0 || !strings.Contains(out, "mariadb-server") || strings.Contains(out, "postgresql ") {
			t.Errorf("%v without MariaDB: exit %d, output %q; want a failure naming mariadb-server", argv, code, out)
		}
	}
	root, path = sysroot(t, true)
	if code, out := runDeps(t, root, path, false, []string{"./.ci/install-deps", "mariadb"}); code != 0 || out != "" {
		t.Errorf("install-deps mariadb with MariaDB installed: exit %d, output %q; want exit 0, silent", code, out)
	}
}

// make test needs Debian's chromium (the status page's browser test); make
// run, make clickhouse and install-deps mariadb do not. Debian's
// /usr/lib/chromium/chromium counts too.
func TestDepsChromium(t *testing.T) {
	root, path := sysroot(t, false)
	for _, argv := range depsCommands(t, "test") {
		code, out := runDeps(t, root, path, true, argv)
		if code == 0 || !strings.Contains(out, " chromium") {
			t.Errorf("%v without Chromium: exit %d, output %q; want a failure naming chromium", argv, code, out)
		}
	}
	for _, target := range []string{"run", "clickhouse"} {
		for _, argv := range depsCommands(t, target) {
			if _, out := runDeps(t, root, path, true, argv); strings.Contains(out, "chromium") {
				t.Errorf("make %s's %v asks for chromium: %q", target, argv, out)
			}
		}
	}
	if _, out := runDeps(t, root, path, true, []string{"./.ci/install-deps", "mariadb"}); strings.Contains(out, "chromium") {
		t.Errorf("install-deps mariadb asks for chromium: %q", out)
	}
	root, path = sysroot(t, true)
	if err := os.Remove(filepath.Join(root, "usr/bin/chromium")); err != nil {
		t.Fatal(err)
	}
	writeExec(t, filepath.Join(root, "usr/lib/chromium/chromium"), "#!/bin/sh\nexit 0\n")
	for _, argv := range depsCommands(t, "test") {
		if code, out := runDeps(t, root, path, true, argv); code != 0 || out != "" {
			t.Errorf("%v with /usr/lib/chromium/chromium: exit %d, output %q; want exit 0, silent", argv, code, out)
		}
	}
}

// clickhouse-server and mariadbd in /usr/sbin are found with a PATH that
// lacks /usr/sbin.
func TestDepsFindDebianPaths(t *testing.T) {
	root, path := sysroot(t, true)
	for _, target := range []string{"run", "test", "clickhouse"} {
		for _, argv := range depsCommands(t, target) {
			if code, out := runDeps(t, root, path, false, argv); code != 0 || out != "" {
				t.Errorf("make %s's %v with everything installed: exit %d, output %q; want exit 0, silent", target, argv, code, out)
			}
		}
	}
}

// The first build takes minutes: make build says so before it starts.
func TestMakeBuildSaysItTakesMinutes(t *testing.T) {
	cmd := exec.Command("make", "-n", "-B", "build")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build: %v\n%s", err, out)
	}
	s := string(out)
	echo, build := strings.Index(s, "minutes"), strings.Index(s, "go build")
	if echo < 0 || build < 0 || echo > build {
		t.Errorf("make -n build = %q; want a line saying the first build takes minutes before go build", s)
	}
}
