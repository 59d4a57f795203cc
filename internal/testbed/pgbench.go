package testbed

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/pgcluster"
)

// PgbenchTables are pgbench's tables with a primary key: its name and key
// column.
var PgbenchTables = []struct{ Name, Key string }{
	{"pgbench_accounts", "aid"}, {"pgbench_branches", "bid"}, {"pgbench_tellers", "tid"},
}

// PgbenchMapping is the TABLE MAPPING of a mirror of PgbenchTables onto
// tables of the same names.
const PgbenchMapping = `pgbench_accounts:pgbench_accounts, pgbench_branches:pgbench_branches, pgbench_tellers:pgbench_tellers`

// Pgbench runs the pgbench binary of the installed Postgres with args and
// the database url, and fails t when it fails.
func Pgbench(t testing.TB, url string, args ...string) {
	t.Helper()
	bin, err := pgcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "pgbench"), append(args, url)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
}

// PgbenchLoad is a pgbench write load that runs until the test stops it, so
// that a test does as much as it needs under the load whatever the
// machine's speed: a slow machine makes the test slower, not fail. Its -T is
// only an upper bound; pgbench ending before Stop is a failure.
type PgbenchLoad struct {
	cmd   *exec.Cmd
	bound time.Duration
	out   bytes.Buffer // pgbench's output, read once it ended
	done  chan struct{}
	err   error // how pgbench ended, once done is closed
}

// StartPgbench starts pgbench on url with args for at most bound; the load
// is stopped when t ends.
func StartPgbench(t testing.TB, url string, bound time.Duration, args ...string) *PgbenchLoad {
	t.Helper()
	bin, err := pgcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	args = append(args, "-T", strconv.Itoa(int(bound.Seconds())), url)
	l := &PgbenchLoad{cmd: exec.Command(filepath.Join(bin, "pgbench"), args...), bound: bound, done: make(chan struct{})}
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.out
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("pgbench %v: %v", args, err)
	}
	go func() {
		l.err = l.cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(func() {
		_ = l.cmd.Process.Kill()
		<-l.done
	})
	return l
}

// MustRun fails t, saying what was under way, when pgbench has ended: the
// upper bound was too short for the test, or pgbench failed.
func (l *PgbenchLoad) MustRun(t testing.TB, what string) {
	t.Helper()
	select {
	case <-l.done:
		t.Fatalf("pgbench ended (%v, bound %s) before %s:\n%s", l.err, l.bound, what, l.out.String())
	default:
	}
}

// Stop ends the load (pgbench dies of SIGINT, its open transactions roll
// back) and fails t if it had ended by itself.
func (l *PgbenchLoad) Stop(t testing.TB) {
	t.Helper()
	l.MustRun(t, "the test stopped it")
	if err := l.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("stop pgbench: %v", err)
	}
	<-l.done
}
