package executor

import "testing"

// A node does a mirror's periodic work when it holds the mirror's lease,
// or when nobody does and it leads; never for a mirror another node runs.
func TestOwnershipMine(t *testing.T) {
	owners := map[string]string{"here": "n1", "there": "n2"}
	for _, c := range []struct {
		leader bool
		mirror string
		want   bool
	}{
		{false, "here", true},
		{true, "here", true},
		{false, "there", false},
		{true, "there", false},
		{false, "nobody", false},
		{true, "nobody", true},
	} {
		o := ownership{node: "n1", leader: c.leader, owners: owners}
		if got := o.mine(c.mirror); got != c.want {
			t.Errorf("leader %v, mirror %s: mine = %v, want %v", c.leader, c.mirror, got, c.want)
		}
	}
}
