package replication

import (
	"strings"
	"testing"
	"time"
)

// A node's own queue is node_<id> for the ids RandomNodeID makes, and a
// valid, distinct River queue name for any other id.
func TestNodeQueue(t *testing.T) {
	if q := nodeQueue("4f1c2a9b0e77"); q != "node_4f1c2a9b0e77" {
		t.Errorf("nodeQueue of a random id: %q", q)
	}
	seen := map[string]string{}
	for _, id := range []string{"Node.A", "node_a", "node-a", "n/a", "n a", strings.Repeat("x", 100), strings.Repeat("x", 99) + "y"} {
		q := nodeQueue(id)
		if len(q) > 64 || strings.Trim(q, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			t.Errorf("nodeQueue(%q) = %q: not a River queue name", id, q)
		}
		if other, ok := seen[q]; ok {
			t.Errorf("nodeQueue(%q) = nodeQueue(%q) = %q", id, other, q)
		}
		seen[q] = id
	}
}

// The periodic jobs' schedule is aligned on the period, so that any
// leader schedules the same instants.
func TestAlignedSchedule(t *testing.T) {
	s := alignedSchedule{every: 10 * time.Second}
	at := time.Date(2026, 12, 6, 18, 0, 3, 0, time.UTC)
	if n := s.Next(at); !n.Equal(time.Date(2026, 12, 6, 18, 0, 10, 0, time.UTC)) {
		t.Errorf("Next(%s) = %s", at, n)
	}
	if n := s.Next(at.Add(7 * time.Second)); !n.Equal(time.Date(2026, 12, 6, 18, 0, 20, 0, time.UTC)) {
		t.Errorf("Next at a period's start = %s, want the next period's", n)
	}
}
