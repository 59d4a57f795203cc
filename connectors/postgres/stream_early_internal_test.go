package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
)

// TestFoldOverdue: transactions folded into an open one wait for it at
// most foldWait.
func TestFoldOverdue(t *testing.T) {
	long := time.Now().Add(-foldWait - time.Second)
	for _, c := range []struct {
		e    earlyState
		want bool
	}{
		{earlyState{open: 7, folded: true, foldedAt: long}, true},
		{earlyState{open: 7, folded: true, foldedAt: time.Now()}, false},
		{earlyState{open: 7, foldedAt: long}, false},      // nothing folded
		{earlyState{folded: true, foldedAt: long}, false}, // nothing open
	} {
		err := c.e.overdue()
		if got := errors.Is(err, connectors.ErrEarlyAbandoned); got != c.want {
			t.Errorf("%+v: overdue() = %v, want abandoned %v", c.e, err, c.want)
		}
	}
}
