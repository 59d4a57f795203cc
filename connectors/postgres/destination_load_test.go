package postgres_test

import (
	"testing"

	"github.com/sluicedb/sluice/connectors/postgres"
)

// TestDestinationBuildMemory checks that index builds after a load run
// with maintenance_work_mem raised to 1 GB, never lowered, and that the
// session gets its own value back.
func TestDestinationBuildMemory(t *testing.T) {
	ctx := testCtx(t)
	for _, c := range []struct{ name, set, during string }{
		{"lower is raised", "", "1GB"},
		{"higher is kept", "3GB", "3GB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := dstCluster.NewDB(t)
			if c.set != "" {
				conn := connect(t, url)
				mustExec(t, conn, "ALTER DATABASE "+conn.Config().Database+" SET maintenance_work_mem = '"+c.set+"'")
			}
			d := openDest(t, url, "", "m")
			before, err := postgres.SettingForTest(ctx, d, "maintenance_work_mem")
			if err != nil {
				t.Fatal(err)
			}
			during, err := postgres.BuildMemoryForTest(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			after, err := postgres.SettingForTest(ctx, d, "maintenance_work_mem")
			if err != nil {
				t.Fatal(err)
			}
			if during != c.during || after != before {
				t.Fatalf("maintenance_work_mem %s before, %s during the build, %s after; want %s during, as before after",
					before, during, after, c.during)
			}
		})
	}
}
