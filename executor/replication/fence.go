package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// The fences at the databases (docs/cluster.md). The catalog refuses the
// writes of a flow whose lease is stale; a node frozen past its lease
// (SIGSTOP, a paused VM) wakes up with a batch in hand and its connections
// open, so the databases fence it too:
//
//   - The destination keeps the epoch of the lease the stream runs under
//     (connectors.Fencer): the flow claims it when its stream starts, and
//     each batch's commit checks it, in the batch's transaction where the
//     destination has them. A stale node's batch is refused with
//     connectors.ErrFenced; its flow stops as for a lost lease (retry).
//     A load claims it too before it plans (a new owner resuming a load),
//     and each of its partitions carries the load's epoch, which the
//     destination's loader checks (connectors.LoadJob.Epoch): a partition
//     job of a superseded load is refused, its job cancelled rather than
//     retried (jobs.go), and the stale owner's load stops as for a lost
//     lease (load_jobs.go). A table resync's copy claims its own
//     connection, so that its state records and shadows are checked.
//   - The source's stream has one active reader (a Postgres slot): a new
//     owner whose stream start finds the slot active for the stale node's
//     walsender ends that walsender (connectors.StreamTaker), once it has
//     checked in the catalog that it holds the lease, and starts again.

// leaseEventKind is the kind of the mirror events about leases and fences.
const leaseEventKind = "lease"

// fence claims the destination for the epoch of the lease the flow runs
// under, when the destination can keep one (connectors.Fencer) and the
// flow runs under a lease (a flow of a unit test may not). What the claim
// ended of a stale node (a destination session holding the mirror's
// metadata row) is logged and recorded as mirror events.
func (f *flow) fence(ctx context.Context, dst connectors.Destination) error {
	lease, ok := catalog.LeaseFrom(ctx)
	if !ok || lease.Epoch == 0 {
		return nil
	}
	fc, ok := dst.(connectors.Fencer)
	if !ok {
		return nil
	}
	ended, err := fc.Fence(ctx, lease.Epoch)
	f.noteEnded(ctx, ended, lease)
	if errors.Is(err, connectors.ErrFenced) {
		return f.fencedAtClaim(ctx, lease, err)
	}
	if err != nil {
		return err
	}
	f.log.DebugContext(ctx, "destination claimed for the lease's epoch", "epoch", lease.Epoch)
	return nil
}

// leaseEpoch is the epoch of the lease the flow runs under (0: none, a
// flow of a unit test), which its loads' partitions carry
// (connectors.LoadJob.Epoch).
func leaseEpoch(ctx context.Context) int64 {
	lease, _ := catalog.LeaseFrom(ctx)
	return lease.Epoch
}

// fencedAtClaim explains a claim the destination refused (err wraps
// connectors.ErrFenced). Normally a later lease took the mirror over, and
// err stops the flow as for a lost lease. But when the catalog says this
// node's lease is still the mirror's current one, no node of this catalog
// can have claimed a later epoch (epochs only grow with the mirror's
// lease): the destination holds the records of an earlier mirror of the
// name (dropped while its destination was out of reach) or of another
// catalog's mirror writing the same destination. Retrying cannot cure
// that; the user must act, and is told how.
func (f *flow) fencedAtClaim(ctx context.Context, lease catalog.Lease, err error) error {
	h, herr := f.store.GetLeaseHolder(ctx, f.m.Name)
	if herr != nil || h.Node != lease.Node || h.Epoch != lease.Epoch {
		return err
	}
	// Not wrapping err: the retry loop must record this error, not stop.
	return &UserError{Err: fmt.Errorf("the destination refused the mirror's stream lease (%v), yet epoch %d is the mirror's "+
		"current lease: the destination's Sluice metadata for mirror %q belongs to an earlier mirror of that name or to "+
		"another Sluice catalog's mirror writing this destination; DROP MIRROR %s and create it again, or remove the "+
		"mirror's records from the destination's Sluice metadata if nothing else writes them, then PAUSE MIRROR %s and "+
		"RESUME MIRROR %s", err, lease.Epoch, f.m.Name, f.m.Name, f.m.Name, f.m.Name)}
}

// noteEnded logs and records as mirror events what a fence or a stream
// takeover ended.
func (f *flow) noteEnded(ctx context.Context, ended []string, lease catalog.Lease) {
	for _, e := range ended {
		f.log.InfoContext(ctx, "ended a stale node's session", "what", e, "node", lease.Node, "epoch", lease.Epoch)
		msg := fmt.Sprintf("node %s (lease epoch %d): %s", lease.Node, lease.Epoch, e)
		if err := f.store.AddEvent(ctx, f.m.Name, leaseEventKind, msg); err != nil {
			f.log.ErrorContext(ctx, "record a mirror event", "err", err)
		}
	}
}

// takeStream is called when the stream could not start because another
// session reads it (connectors.ErrStreamBusy). When the source can end
// that reader (connectors.StreamTaker) and this node holds the mirror's
// lease in the catalog now (so the reader is a stale node's: the lease it
// ran under expired), it ends it and reports true: the caller starts the
// stream again. Otherwise it reports false, and the caller retries later,
// as after any error.
func (f *flow) takeStream(ctx context.Context, src connectors.Source) (bool, error) {
	st, ok := src.(connectors.StreamTaker)
	if !ok {
		return false, nil
	}
	lease, ok := catalog.LeaseFrom(ctx)
	if !ok || lease.Epoch == 0 {
		return false, nil
	}
	h, err := f.store.GetLeaseHolder(ctx, f.m.Name)
	if err != nil {
		return false, err
	}
	if h.Node != lease.Node || h.Epoch != lease.Epoch {
		return false, nil
	}
	ended, err := st.TakeStream(ctx, f.spec())
	f.noteEnded(ctx, ended, lease)
	return err == nil, err
}

// fencedEvent records, without the lease (the flow's is stale), that
// the flow stopped because the destination was claimed by a later epoch:
// it applied nothing. Best effort.
func fencedEvent(ctx context.Context, store *catalog.Store, name, node string, err error) {
	msg := fmt.Sprintf("node %s stopped the mirror's flow: %v: the write was refused", node, err)
	if fe := (*connectors.FencedError)(nil); errors.As(err, &fe) {
		msg = fmt.Sprintf("this node's (%s) lease epoch %d was superseded by epoch %d at the destination: it applied nothing",
			node, fe.Epoch, fe.Recorded)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_ = store.AddEvent(ctx, name, leaseEventKind, msg)
}

// fenceRetryAfter is how long a flow waits before it starts its stream
// again after ending a stale reader.
const fenceRetryAfter = 100 * time.Millisecond
