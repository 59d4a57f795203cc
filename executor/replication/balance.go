package replication

import (
	"context"
	"time"
)

// Spreading the streams over the nodes (docs/cluster.md#balancing). The
// rule is a fair share: a node runs at most ceil(mirrors that should run /
// alive nodes) streams.
//
//   - look: a node takes free leases while it runs fewer streams than its
//     share. A lease free for longer than takeAnyAfter is taken by any
//     node, whatever its share, so that a stream never waits long for a
//     node whose count the others misjudged (one about to die, say).
//   - balance: a node running more than its share (after a restart of
//     another node, or statements that ran the mirrors where they were
//     issued) hands one stream over, at most once per node timeout: it
//     stops that flow, frees its lease and tells the others, one of which,
//     below its share, takes it at once. Only a streaming mirror without
//     an error, a resync or a validation under way is handed over, so no
//     initial load, resync or validation starts over.
//
//   - placeElsewhere: a statement (Run) that finds the mirror's lease free
//     and unreserved (CREATE MIRROR, a RESUME MIRROR after a while) on a
//     node at or above its share, while another alive node is below its
//     own, leaves the mirror to the nodes below their share: it tells
//     them (a "look" notification) and one takes it at once. A statement
//     that stopped the mirror (its lease reserved: RESYNC MIRROR, ALTER
//     MIRROR, VALIDATE MIRROR, a quick PAUSE and RESUME) runs it where it
//     was issued; balance moves it later if needed.

// takeAnyAfter is how long a free lease waits for a node below its share
// before any node takes it.
func (e *Engine) takeAnyAfter() time.Duration { return 2 * e.heartbeatEvery() }

// look starts the flows of free mirrors this node may take (see above),
// the longest free first, and waits until each runner has tried its
// lease, so that its count is right for the next. Called by Start and the
// heartbeat goroutine, one at a time.
func (e *Engine) look(ctx context.Context) error {
	store := e.cfg.Store
	free, err := store.FreeMirrors(ctx)
	if err != nil || len(free) == 0 {
		return err
	}
	load, err := store.GetClusterLoad(ctx)
	if err != nil {
		return err
	}
	if _, ok := load.Streams[e.cfg.Node]; !ok {
		load.Streams[e.cfg.Node] = 0 // this node is alive, whatever its last heartbeat says
	}
	share, mine := load.Share(), load.Streams[e.cfg.Node]
	for _, f := range free {
		if mine >= share && f.FreeFor < e.takeAnyAfter() {
			continue
		}
		r := e.start(f.Name, false)
		if r == nil {
			continue
		}
		select {
		case <-r.tried:
		case <-ctx.Done():
			return ctx.Err()
		}
		e.mu.Lock()
		took := r.lease.Epoch != 0
		e.mu.Unlock()
		if took {
			mine++
		}
	}
	return nil
}

// balance hands one of this node's streams over when it runs more than
// its share and has not handed one over for a node timeout (see above).
func (e *Engine) balance(ctx context.Context) error {
	e.mu.Lock()
	recent := time.Since(e.lastHandOver) < e.cfg.NodeTimeout
	e.mu.Unlock()
	if recent {
		return nil
	}
	store := e.cfg.Store
	load, err := store.GetClusterLoad(ctx)
	if err != nil {
		return err
	}
	mine, share := load.Streams[e.cfg.Node], load.Share()
	if len(load.Streams) < 2 || mine <= share {
		return nil
	}
	name, err := store.HandOverCandidate(ctx, e.cfg.Node)
	if err != nil || name == "" {
		return err
	}
	e.mu.Lock()
	r := e.runners[name]
	if r == nil || r.lease.Epoch == 0 || r.lost || r.validating.Load() > 0 {
		e.mu.Unlock()
		return nil // the next heartbeat looks again
	}
	r.handOver = true
	e.lastHandOver = time.Now()
	e.mu.Unlock()
	e.cfg.Logger.InfoContext(ctx, "handing a stream over to balance the nodes", "mirror", name, "streams", mine, "share", share,
		"alive_nodes", len(load.Streams))
	go e.stopLocal(name, false)
	return nil
}

// placeElsewhere reports whether a statement's run of the mirror should be
// left to another node (see above), having told the others; false when
// this node should take it, or when the catalog cannot tell (it tries).
func (e *Engine) placeElsewhere(ctx context.Context, name string) bool {
	store := e.cfg.Store
	free, err := store.FreeMirrors(ctx)
	if err != nil {
		return false
	}
	isFree := false
	for _, f := range free {
		isFree = isFree || f.Name == name
	}
	if !isFree {
		return false // reserved for this statement, held elsewhere, or not to run
	}
	load, err := store.GetClusterLoad(ctx)
	if err != nil {
		return false
	}
	share, mine := load.Share(), load.Streams[e.cfg.Node]
	below := false
	for node, n := range load.Streams {
		below = below || (node != e.cfg.Node && n < share)
	}
	if mine < share || !below {
		return false
	}
	if err := store.Notify(ctx, allNodes, "look", name); err != nil {
		return false
	}
	e.cfg.Logger.InfoContext(ctx, "mirror left to a node below its share", "mirror", name, "streams", mine, "share", share)
	return true
}
