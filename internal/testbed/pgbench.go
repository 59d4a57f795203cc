package testbed

import (
	"os/exec"
	"path/filepath"
	"testing"

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
