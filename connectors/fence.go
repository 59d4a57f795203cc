package connectors

import (
	"context"
	"errors"
	"fmt"
)

// Fencing (docs/cluster.md). Several Sluice nodes share one catalog, and
// a mirror's stream runs on the node holding its lease, under an epoch
// that every acquisition raises. The catalog refuses the position writes
// of a stale epoch; these abilities are the fences at the databases
// themselves, for a node that was frozen (or cut off) past its lease and
// wakes up with a batch in hand.

// ErrFenced is wrapped by a destination's error when a later lease epoch
// claimed the mirror's destination (Fencer.Fence): the caller's epoch is
// stale and its write was refused (where the database has transactions,
// nothing of it applied; elsewhere, rows written before the refusing
// check converge with the new owner's, as the Fencer's comment says). The
// flow that gets it must stop, as for a lost lease, and not retry.
var ErrFenced = errors.New("the destination is claimed by a later lease epoch")

// ErrStreamBusy is wrapped by Source.Stream's error when the mirror's
// stream has another active reader (a Postgres slot active for another
// session): a StreamTaker can end that reader.
var ErrStreamBusy = errors.New("the change stream is read by another session")

// FencedError is the error of a write refused because the destination
// records a later epoch than the writer's. It wraps ErrFenced.
type FencedError struct {
	// Mirror is the mirror's name.
	Mirror string
	// Epoch is the writer's epoch; Recorded the later one the
	// destination holds.
	Epoch, Recorded int64
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("mirror %q: lease epoch %d was superseded by epoch %d at the destination: %v", e.Mirror, e.Epoch,
		e.Recorded, ErrFenced)
}

// Is makes errors.Is(err, ErrFenced) hold.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Fencer is the ability of a destination to keep, with the mirror's
// applied position, the lease epoch of the node that applies: the second
// fence, after the catalog's. A flow claims the destination with its
// lease's epoch before it applies anything; from then on the Appliers the
// Destination makes (NewApplier, called after Fence) refuse to record a
// batch, in the batch's own transaction where the database has them,
// unless the recorded epoch is still theirs, and return an error wrapping
// ErrFenced (a *FencedError) without applying it. Its other writes that a
// stale node could make after a claim (a table resync's state, a shadow
// table made or swapped in, ForgetLoad, Emptier's emptying and restoring,
// LoadFinisher.FinishLoad, TableRemover.RemoveTable) are refused the same
// way once it is claimed. Its Loaders
// refuse a partition of a load planned under an earlier epoch than the
// recorded one (LoadJob.Epoch): in the transaction that writes the
// partition and records it done where the database has them; otherwise
// before the rows and again before the done mark, the rows of a partition
// that slips past converging with the new owner's (same rows, same
// version).
type Fencer interface {
	// Fence records epoch as the mirror's at the destination, unless a
	// later one is recorded (a *FencedError, nothing changed). The same
	// epoch again is accepted: idempotent. It may end what a stale
	// writer of an earlier epoch holds at the destination (a Postgres
	// transaction whose locks would make the new owner wait), and
	// returns what it ended, for the mirror's events, one line each.
	Fence(ctx context.Context, epoch int64) (ended []string, err error)
}

// StreamTaker is the ability of a source whose change stream admits one
// active reader (a Postgres replication slot): a new lease holder ends the
// stale reader of a node that lost its lease but kept its connection (a
// frozen or partitioned node), rather than wait for the source to time it
// out. Sources whose newer reader ends the older by itself (a MySQL binlog
// dump of the same server id) need not have it.
type StreamTaker interface {
	// TakeStream ends the session reading spec's stream, if any, and
	// returns what it ended, one line each (naming the session's pid),
	// nil when none read it. Only that stream's reader is ended.
	TakeStream(ctx context.Context, spec StreamSpec) (ended []string, err error)
}
