package replication

import (
	"testing"
	"time"
)

// simulateWindow runs a load of parts partitions of partRows rows whose
// rows per second with n partitions at once is rate(n), polling the window
// every 100 ms as the owner does, and returns the windows it used, in
// order, with how long each lasted.
func simulateWindow(t *testing.T, limit, parts int, partRows int64, rate func(n int) float64) []int {
	t.Helper()
	w := newLoadWindow(limit)
	now := time.Unix(0, 0)
	var rows int64
	total := int64(parts) * partRows
	var used []int
	for rows < total {
		done := int(rows / partRows)
		n := w.next(now, loadState{rows: rows, open: min(w.n, parts-done), pending: max(0, parts-done-w.n),
			done: done, doneRow: int64(done) * partRows})
		if len(used) == 0 || used[len(used)-1] != n {
			used = append(used, n)
		}
		rows += int64(rate(n) / 10)
		now = now.Add(100 * time.Millisecond)
	}
	return used
}

func TestLoadWindow(t *testing.T) {
	const m = 1_000_000
	linear := func(n int) float64 { return float64(n) * m }
	flat := func(int) float64 { return m }
	// Each stream after the second adds a tenth of one.
	saturating := func(n int) float64 { return m * (1 + 0.9*float64(min(n, 2)-1) + 0.1*float64(max(n-2, 0))) }
	for _, c := range []struct {
		name     string
		limit    int
		parts    int
		partRows int64
		rate     func(int) float64
		want     []int
	}{
		{"one worker", 1, 100, m, linear, []int{1}},
		{"streams that scale grow to the bound", 4, 400, m, linear, []int{1, 2, 3, 4}},
		{"a stream that adds nothing is taken back", 4, 400, m, flat, []int{1, 2, 1}},
		{"growth stops where a stream stops paying", 8, 400, m, saturating, []int{1, 2, 3, 2}},
		// 30 partitions of 100k rows at 1M rows/s: 3 s in all, less than
		// windowWorthIt left once measured.
		{"a short load stays at one", 4, 30, 100_000, linear, []int{1}},
		{"a single partition", 4, 1, 10 * m, linear, []int{1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := simulateWindow(t, c.limit, c.parts, c.partRows, c.rate)
			if len(got) != len(c.want) {
				t.Fatalf("windows %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("windows %v, want %v", got, c.want)
				}
			}
		})
	}
}
