// Command sluice-clickhouse (`make clickhouse`) runs a throwaway ClickHouse
// server for trying Sluice's ClickHouse destination: the test bed's server
// (config, data and logs in a temporary directory, 127.0.0.1 only), on a
// known native port, with a database to mirror into. Ctrl-C stops it and
// deletes its directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluicedb/sluice/internal/testbed"
)

const usage = `sluice-clickhouse: a throwaway ClickHouse server for trying Sluice (make clickhouse).

Usage:
  sluice-clickhouse [--port N] [--http-port N] [--database NAME]

  --port N          native-protocol port on 127.0.0.1 (default 19000)
  --http-port N     HTTP port on 127.0.0.1 (default 18123)
  --database NAME   database created for mirrors (default analytics)

The server runs until Ctrl-C (or SIGTERM), then it is stopped and its data deleted.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice-clickhouse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	var opts testbed.ClickHouseOptions
	fs.IntVar(&opts.Port, "port", 19000, "")
	fs.IntVar(&opts.HTTPPort, "http-port", 18123, "")
	database := fs.String("database", "analytics", "")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ch, err := testbed.StartClickHouseWith(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "sluice-clickhouse: %v\n", err)
		return 1
	}
	defer ch.Stop()
	if err := createDatabase(ctx, ch, *database); err != nil {
		fmt.Fprintf(stderr, "sluice-clickhouse: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, `ClickHouse %s is running (throwaway: Ctrl-C stops it and deletes its data).
  native protocol: %s (user default, no password), database %s
  HTTP:            127.0.0.1:%d
  data and logs:   %s
In Sluice:
  CREATE PEER ch FROM CLICKHOUSE WITH (host = '%s', port = '%d', database = '%s');
`, ch.Version(), ch.Addr(), *database, ch.HTTPPort(), ch.Dir(), ch.Host(), ch.Port(), *database)
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "stopping ClickHouse")
		return 0
	case <-ch.Done():
		fmt.Fprintf(stderr, "sluice-clickhouse: the server exited unexpectedly (SLUICE_KEEP_TEST_CLUSTERS=1 keeps its logs in %s)\n", ch.Dir())
		return 1
	}
}

func createDatabase(ctx context.Context, ch *testbed.ClickHouse, name string) error {
	conn, err := ch.Open("default")
	if err != nil {
		return fmt.Errorf("connect to clickhouse: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+strings.ReplaceAll(name, "`", "\\`")+"`"); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
