package replication

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicedb/sluice/catalog"
)

// The node: several Sluice processes may share one catalog (docs/cluster.md).
// Each is a node, registered in the catalog, heartbeating every
// heartbeatEvery. A mirror's flow runs on the node that holds the mirror's
// stream lease (catalog/nodes.go):
//
//   - A runner first acquires the lease, under a new epoch, and leaves the
//     mirror to the node that holds it when that lease is live. Its flow
//     runs with the lease in its context: the catalog writes that move the
//     mirror on are fenced by it (catalog.WithLease).
//   - Each heartbeat renews the node's leases in one statement. A lease
//     found lost stops its flow at once; so does one not renewed for half
//     the node timeout (the watchdog), so that a node cut off from the
//     catalog has stopped its streams before their leases can expire and
//     another node take them.
//   - Each heartbeat also looks for mirrors that should run and whose
//     lease is free or expired (look, balance.go): how a dead node's
//     streams move, within the node timeout and a heartbeat. A node takes
//     them up to its fair share; one above its share hands a stream over
//     now and then (balance).
//   - A node that stops (SIGTERM) frees its leases as its flows end and
//     tells the others, which look at once.
//   - Stop on one node stops the flow wherever it runs: the holder is
//     asked (mirrors.lease_release, seen at its heartbeat, and a
//     notification for now) to stop and release. Wake reaches the holder
//     by notification.
//
// The source's stream and the destination are fences of their own
// (fence.go): a new holder ends a stale node's reader of the slot, and
// claims the destination with its epoch, which every batch checks.

const (
	// DefaultNodeTimeout is how long a node may be silent before it is
	// gone (--node-timeout).
	DefaultNodeTimeout = 15 * time.Second
	// MinNodeTimeout is the smallest node timeout accepted.
	MinNodeTimeout = time.Second
	// maxHeartbeat caps the interval between heartbeats.
	maxHeartbeat = 3 * time.Second
	// releaseTimeout bounds the catalog writes that give leases up.
	releaseTimeout = 5 * time.Second
	// stopPoll is how often Stop looks whether another node released.
	stopPoll = 100 * time.Millisecond
)

// RandomNodeID returns a new random node id: 12 hexadecimal digits.
func RandomNodeID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// heartbeatEvery is the interval between the node's heartbeats: a fifth
// of the node timeout, at most maxHeartbeat.
func (e *Engine) heartbeatEvery() time.Duration {
	return min(e.cfg.NodeTimeout/5, maxHeartbeat)
}

// reserveFor is how long a Stop keeps a free lease for its statement.
func (e *Engine) reserveFor() time.Duration { return 2 * e.cfg.NodeTimeout }

// ReserveFor is how long a statement may keep a free lease reserved for
// itself (catalog.Store.ReserveLease): CREATE MIRROR while it prepares
// the new mirror.
func (e *Engine) ReserveFor() time.Duration { return e.reserveFor() }

// Node returns this node's id.
func (e *Engine) Node() string { return e.cfg.Node }

// acquire takes the mirror's lease for runner r. It returns false when
// another node holds it, the catalog cannot be reached (the next
// heartbeat tries again), or ctx ended.
func (e *Engine) acquire(ctx context.Context, name string, r *runner) (catalog.Lease, bool) {
	sent := time.Now()
	epoch, ok, err := e.cfg.Store.AcquireLease(ctx, name, e.cfg.Node, e.cfg.NodeTimeout, r.statement)
	log := e.cfg.Logger.With("mirror", name)
	if err != nil {
		if ctx.Err() == nil {
			log.ErrorContext(ctx, "acquire the mirror's stream lease", "err", err)
		}
		return catalog.Lease{}, false
	}
	if !ok {
		log.DebugContext(ctx, "the mirror runs on another node")
		return catalog.Lease{}, false
	}
	l := catalog.Lease{Node: e.cfg.Node, Epoch: epoch}
	e.mu.Lock()
	r.lease, r.renewed = l, sent
	e.mu.Unlock()
	log.InfoContext(ctx, "stream lease acquired", "node", e.cfg.Node, "epoch", epoch)
	return l, true
}

// release gives runner r's lease up, reserved when a Stop asked so. A
// lease given up by a stopping node or handed over for balance is free
// for the others at once, and they are told (a "look" notification to
// all), so that one takes the stream now rather than at its next
// heartbeat. A stopping node first marks itself stopping, so that the
// others share its streams out among themselves only.
func (e *Engine) release(name string, r *runner) {
	e.mu.Lock()
	l, reserve, handOver := r.lease, r.reserve, r.handOver
	r.lease = catalog.Lease{}
	stopping := e.closed || (e.base != nil && e.base.Err() != nil)
	e.mu.Unlock()
	if l.Epoch == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	var keep time.Duration
	why := "its flow ended"
	switch {
	case reserve:
		keep, why = e.reserveFor(), "stopped by a statement"
	case handOver:
		why = "handed over to balance the nodes"
	case stopping:
		why = "the node is stopping"
		e.stopping.Do(func() {
			if err := e.cfg.Store.MarkNodeStopping(ctx, e.cfg.Node); err != nil {
				e.cfg.Logger.ErrorContext(ctx, "record the node stopping", "node", e.cfg.Node, "err", err)
			}
		})
	}
	if err := e.cfg.Store.ReleaseLease(ctx, name, l, keep, why); err != nil {
		// It expires by itself.
		e.cfg.Logger.ErrorContext(ctx, "release the mirror's stream lease", "mirror", name, "err", err)
		return
	}
	e.cfg.Logger.InfoContext(ctx, "stream lease released", "mirror", name, "node", e.cfg.Node, "epoch", l.Epoch, "why", why)
	if !reserve && (handOver || stopping) {
		if err := e.cfg.Store.Notify(ctx, allNodes, "look", name); err != nil {
			e.cfg.Logger.ErrorContext(ctx, "tell the other nodes a stream is free", "mirror", name, "err", err)
		}
	}
}

// allNodes is the node of a notification meant for every node.
const allNodes = "*"

// startNode starts the node's heartbeat, watchdog and listener; they end
// with ctx or Close.
func (e *Engine) startNode(ctx context.Context) {
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	e.mu.Lock()
	e.bgStop, e.bgDone = stop, done
	e.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		e.heartbeats(ctx)
	}()
	go func() {
		defer wg.Done()
		e.watchdog(ctx)
	}()
	go func() {
		defer wg.Done()
		e.listen(ctx)
	}()
	go func() {
		wg.Wait()
		close(done)
	}()
}

// heartbeats beats every heartbeatEvery until ctx ends.
func (e *Engine) heartbeats(ctx context.Context) {
	t := time.NewTicker(e.heartbeatEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.lookNow:
			lctx, cancel := context.WithTimeout(ctx, e.heartbeatEvery())
			if err := e.look(lctx); err != nil && lctx.Err() == nil {
				e.cfg.Logger.ErrorContext(ctx, "look for free streams", "err", err)
			}
			cancel()
			continue
		case <-t.C:
		}
		e.beat(ctx)
	}
}

// beat records the node alive, renews its leases (stopping the flows of
// those lost or asked back) and starts the mirrors free to run.
func (e *Engine) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, e.heartbeatEvery())
	defer cancel()
	store := e.cfg.Store
	if err := store.HeartbeatNode(ctx, e.cfg.Node); err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.cfg.Logger.ErrorContext(ctx, "node heartbeat", "err", err)
		}
		return
	}
	held := map[string]int64{}
	e.mu.Lock()
	for name, r := range e.runners {
		if r.lease.Epoch != 0 {
			held[name] = r.lease.Epoch
		}
	}
	e.mu.Unlock()
	if len(held) > 0 {
		sent := time.Now()
		kept, err := store.RenewLeases(ctx, e.cfg.Node, e.cfg.NodeTimeout, held)
		if err != nil {
			e.cfg.Logger.ErrorContext(ctx, "renew the node's stream leases", "err", err)
			return // the watchdog stops the flows if this lasts
		}
		e.mu.Lock()
		for name, epoch := range held {
			r := e.runners[name]
			if r == nil || r.lease.Epoch != epoch {
				continue
			}
			release, ok := kept[name]
			switch {
			case !ok && e.cfg.IgnoreLeaseLoss:
				e.cfg.Logger.ErrorContext(ctx, "stream lease lost, and ignored (fault injection)", "mirror", name, "epoch", epoch)
			case !ok:
				e.cfg.Logger.ErrorContext(ctx, "stream lease lost: stopping the mirror's flow here", "mirror", name, "epoch", epoch)
				r.lost = true
				r.cancel()
			case release:
				go e.stopLocal(name, true)
			default:
				r.renewed = sent
			}
		}
		e.mu.Unlock()
	}
	if err := e.look(ctx); err != nil {
		e.cfg.Logger.ErrorContext(ctx, "look for free streams", "err", err)
		return
	}
	if err := e.balance(ctx); err != nil {
		e.cfg.Logger.ErrorContext(ctx, "balance the streams", "err", err)
	}
}

// watchdog stops the flow of each lease not renewed for half the node
// timeout: the node may be cut off from the catalog, and must stop its
// streams before their leases expire and another node takes them.
func (e *Engine) watchdog(ctx context.Context) {
	t := time.NewTicker(e.heartbeatEvery() / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		for name, r := range e.runners {
			if r.lease.Epoch != 0 && !r.lost && time.Since(r.renewed) > e.cfg.NodeTimeout/2 && !e.cfg.IgnoreLeaseLoss {
				r.lost = true
				e.cfg.Logger.ErrorContext(ctx, "stream lease not renewed for half the node timeout: stopping the mirror's flow here",
					"mirror", name, "epoch", r.lease.Epoch, "node_timeout", e.cfg.NodeTimeout)
				r.cancel()
			}
		}
		e.mu.Unlock()
	}
}

// listen acts on the other nodes' notifications to this node until ctx
// ends, listening again after a lost connection.
func (e *Engine) listen(ctx context.Context) {
	for {
		err := e.cfg.Store.Listen(ctx, func(payload string) {
			node, op, name, ok := catalog.ParseNotification(payload)
			if !ok || (node != e.cfg.Node && node != allNodes) {
				return
			}
			switch op {
			case "look":
				select {
				case e.lookNow <- struct{}{}:
				default: // one pending already
				}
			case "release":
				e.mu.Lock()
				_, here := e.runners[name]
				e.mu.Unlock()
				if here {
					go e.stopLocal(name, true)
				}
			case "wake":
				e.mu.Lock()
				if r := e.runners[name]; r != nil {
					select {
					case r.wake <- struct{}{}:
					default:
					}
				}
				e.mu.Unlock()
			}
		})
		if ctx.Err() != nil {
			return
		}
		e.cfg.Logger.ErrorContext(ctx, "listen for other nodes", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(e.heartbeatEvery()):
		}
	}
}

// StillRunningError is Stop's error when another node runs the mirror and
// did not stop.
type StillRunningError struct {
	Mirror, Node, Address string
	Waited                time.Duration
}

func (e *StillRunningError) Error() string {
	return fmt.Sprintf("mirror %q runs on node %s (%s), which did not stop it within %s", e.Mirror, e.Node, e.Address,
		e.Waited.Round(time.Second))
}

// stopElsewhere waits until no node holds the mirror's lease, asking its
// holder to release it, and leaves it reserved (see Stop). Called after
// the runner here, if any, stopped.
func (e *Engine) stopElsewhere(name string) error {
	wait := e.cfg.NodeTimeout + 2*e.heartbeatEvery()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	store := e.cfg.Store
	asked := time.Time{}
	var last catalog.LeaseHolder
	for {
		ok, err := store.ReserveLease(ctx, name, e.reserveFor())
		if err == nil && ok {
			return nil
		}
		if err == nil {
			last, err = store.GetLeaseHolder(ctx, name)
			if errors.Is(err, catalog.ErrMirrorNotFound) {
				return nil
			}
		}
		switch {
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("stop mirror %q: %w", name, err)
		case err != nil:
		case last.Node == e.cfg.Node:
			// A lease of this node no runner here holds: a runner started
			// meanwhile, stopped now.
			e.stopLocal(name, true)
			_ = store.ReleaseLease(ctx, name, catalog.Lease{Node: e.cfg.Node, Epoch: last.Epoch}, e.reserveFor(),
				"stopped by a statement")
		case last.Node != "" && time.Since(asked) > time.Second:
			if err := store.RequestRelease(ctx, name); err != nil && ctx.Err() == nil {
				return fmt.Errorf("stop mirror %q: %w", name, err)
			}
			asked = time.Now()
		}
		select {
		case <-ctx.Done():
			return &StillRunningError{Mirror: name, Node: last.Node, Address: last.Address, Waited: wait}
		case <-time.After(stopPoll):
		}
	}
}

// wakeElsewhere tells the node holding the mirror's lease, if another,
// to wake its flow.
func (e *Engine) wakeElsewhere(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	h, err := e.cfg.Store.GetLeaseHolder(ctx, name)
	if err != nil || h.Node == "" || h.Node == e.cfg.Node {
		return // the flow polls in any case
	}
	if err := e.cfg.Store.Notify(ctx, h.Node, "wake", name); err != nil {
		e.cfg.Logger.ErrorContext(ctx, "wake the mirror's flow on its node", "mirror", name, "node", h.Node, "err", err)
	}
}
