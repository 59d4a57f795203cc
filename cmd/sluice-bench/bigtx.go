package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The big-transaction phase: memory must not grow with a transaction's
// size. For each size, one source transaction changes that many rows
// while every mirror is paused; then each mirror in turn resumes and
// catches up alone, and the program prints its time and the process's
// peak resident memory during it. A size up to the table's rows updates
// that many existing rows; a larger one inserts that many new rows.

// bigTarget is a mirror the big-transaction phase measures.
type bigTarget struct {
	label  string // for the report and the profiles' names
	mirror string
	// wait waits until a query on the destination returns true.
	wait func(query string) error
	// updated is a query true once row aid has abalance; inserted one true
	// once row aid exists.
	updated  func(aid, abalance int64) string
	inserted func(aid int64) string
}

// parseSizes parses -big: sizes separated by commas, each a number with an
// optional k or M suffix ("" for none).
func parseSizes(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		mult := int64(1)
		switch {
		case strings.HasSuffix(f, "M"):
			mult, f = 1_000_000, strings.TrimSuffix(f, "M")
		case strings.HasSuffix(f, "k"):
			mult, f = 1000, strings.TrimSuffix(f, "k")
		}
		var n int64
		if _, err := fmt.Sscan(f, &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("-big: %q is not a positive number of rows", f)
		}
		out = append(out, n*mult)
	}
	return out, nil
}

// benchBigTransactions runs the big-transaction phase for each size on the
// targets, pgbench_accounts having rows rows at first.
func benchBigTransactions(ctx context.Context, sl, src *pgx.Conn, sizes []int64, targets []bigTarget) error {
	if len(sizes) == 0 || len(targets) == 0 {
		return nil
	}
	fmt.Printf("\n== one large source transaction, each mirror catching up alone ==\n")
	for _, size := range sizes {
		for _, t := range targets {
			if _, err := sl.Exec(ctx, "PAUSE MIRROR "+t.mirror); err != nil {
				return err
			}
		}
		var rows, maxAid int64
		if err := src.QueryRow(ctx, "SELECT count(*), max(aid) FROM pgbench_accounts").Scan(&rows, &maxAid); err != nil {
			return err
		}
		what := "updates"
		var done func(t bigTarget) string
		if size <= rows {
			var before int64
			if err := src.QueryRow(ctx, "SELECT abalance FROM pgbench_accounts WHERE aid = $1", size).Scan(&before); err != nil {
				return err
			}
			if _, err := src.Exec(ctx, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $1", size); err != nil {
				return err
			}
			done = func(t bigTarget) string { return t.updated(size, before+1) }
		} else {
			what = "inserts"
			if _, err := src.Exec(ctx, "INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series($1::int, $2::int) g",
				maxAid+1, maxAid+size); err != nil {
				return err
			}
			done = func(t bigTarget) string { return t.inserted(maxAid + size) }
		}
		for _, t := range targets {
			ph, err := startPhase(fmt.Sprintf("%s-tx%d", t.label, size), profileDir)
			if err != nil {
				return err
			}
			start := time.Now()
			if _, err := sl.Exec(ctx, "RESUME MIRROR "+t.mirror); err != nil {
				return err
			}
			if err := t.wait(done(t)); err != nil {
				return err
			}
			secs := time.Since(start).Seconds()
			rss, err := ph.stop()
			if err != nil {
				return err
			}
			fmt.Printf("%-10s %9d %s in one transaction: %7.2f s  %9.0f rows/s\n", t.label, size, what, secs, float64(size)/secs)
			fmt.Println(rss)
		}
	}
	return nil
}
