package executor

import (
	"context"
)

// Where the periodic per-mirror work runs in a cluster of nodes
// (docs/cluster.md#where-periodic-work-runs). The slot monitor and the
// lag history sampler measure a mirror on the node that holds its stream
// lease, so that N nodes do not query a source N times or store N
// samples a period. A mirror no node streams (paused, done, waiting
// between nodes) is measured by the cluster's leader, the alive node with
// the smallest id, which also does the catalog-wide housekeeping
// (expiring old lag history). Leadership is read from the catalog at each
// round: two nodes may both act for one round while a node joins or
// leaves, which is harmless (a sample more, an expiry twice).

// ownership is what one round of periodic work needs: which mirrors this
// node measures, and whether it leads.
type ownership struct {
	node   string
	leader bool
	owners map[string]string
}

// readOwnership reads the mirrors' owners and the cluster's leader. A node
// that sees no alive node (not registered yet, or the catalog says all
// are silent) leads: it is alone as far as it knows.
func (e *Executor) readOwnership(ctx context.Context) (ownership, error) {
	store := e.cfg.Store
	owners, err := store.MirrorOwners(ctx)
	if err != nil {
		return ownership{}, err
	}
	load, err := store.GetClusterLoad(ctx)
	if err != nil {
		return ownership{}, err
	}
	node := e.engine.Node()
	return ownership{node: node, leader: load.Leader == "" || load.Leader == node, owners: owners}, nil
}

// mine reports whether this node does the mirror's periodic work: it holds
// the mirror's lease, or nobody does and this node leads.
func (o ownership) mine(mirror string) bool {
	return o.mineAs(o.owners[mirror])
}

// mineAs is mine for a mirror whose lease owner is ("": none) read
// elsewhere.
func (o ownership) mineAs(owner string) bool {
	if owner != "" {
		return owner == o.node
	}
	return o.leader
}
