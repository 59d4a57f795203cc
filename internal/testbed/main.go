package testbed

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Main is a test package's TestMain for tests that share clusters: it
// starts one cluster per name (each stored through its pointer in into,
// in the same order), runs the tests, stops the clusters and exits with
// the tests' code. A cluster that does not start fails the package,
// naming it.
func Main(m *testing.M, names []string, into ...**Cluster) {
	if len(names) != len(into) {
		panic("testbed.Main: one pointer per cluster name")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var started []*Cluster
	stop := func() {
		for _, c := range started {
			c.Stop()
		}
	}
	for i, name := range names {
		c, err := Start(ctx, name)
		if err != nil {
			cancel()
			fmt.Fprintf(os.Stderr, "start test cluster %q: %v\n", name, err)
			stop()
			os.Exit(1)
		}
		started = append(started, c)
		*into[i] = c
	}
	cancel()
	code := m.Run()
	stop()
	os.Exit(code)
}
