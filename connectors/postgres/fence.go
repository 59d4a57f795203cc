package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// The two fences of a Postgres peer (docs/cluster.md): as a destination,
// the lease epoch kept in the mirror's metadata row (Fence); as a source,
// the replication slot's single active reader, which a new lease holder
// takes from a stale node (TakeStream).

var (
	_ connectors.Fencer      = (*Destination)(nil)
	_ connectors.StreamTaker = (*Source)(nil)
)

const (
	// fenceLockTimeout bounds how long Fence waits for the mirror's
	// metadata row before it ends the session holding it.
	fenceLockTimeout = 2 * time.Second
	// fenceAttempts bounds the rounds of waiting and ending.
	fenceAttempts = 5
	// takeWait bounds how long TakeStream waits for the slot to be free
	// after ending its reader, signalling it again every takeResignal.
	takeWait     = 10 * time.Second
	takeResignal = 500 * time.Millisecond
)

// Fence implements connectors.Fencer (see Fence); the appliers the
// Destination makes after it check epoch in each transaction.
func (d *Destination) Fence(ctx context.Context, epoch int64) ([]string, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return nil, err
	}
	ended, err := Fence(ctx, d.conn, d.meta, d.mirror, epoch)
	if err != nil {
		return ended, err
	}
	d.epoch = epoch
	return ended, nil
}

// checkEpoch refuses, with a *connectors.FencedError, a write of a claimed
// Destination (Fence) whose epoch is no longer the one recorded: a later
// lease claimed the mirror's destination. It holds the metadata row with
// a share lock until tx ends, so no claim can come between the check and
// tx's commit (a claim waits for it, as it waits for an applier's batch).
// A Destination never claimed (d.epoch 0: a flow without a lease) checks
// nothing.
func (d *Destination) checkEpoch(ctx context.Context, tx pgx.Tx) error {
	return d.checkEpochLock(ctx, tx, "FOR SHARE")
}

// checkEpochLock is checkEpoch with the metadata row read under lock, a
// row-locking clause ("FOR SHARE", "FOR UPDATE") or "" for none.
func (d *Destination) checkEpochLock(ctx context.Context, tx pgx.Tx, lock string) error {
	if d.epoch == 0 {
		return nil
	}
	var recorded int64
	err := tx.QueryRow(ctx, "SELECT epoch FROM "+metaSchema(d.meta)+".mirror_state WHERE mirror = $1 "+lock, d.mirror).
		Scan(&recorded)
	if errors.Is(err, pgx.ErrNoRows) {
		recorded = 0
	} else if err != nil {
		return fmt.Errorf("read the lease epoch of mirror %s: %w", d.mirror, err)
	}
	if recorded != d.epoch {
		return &connectors.FencedError{Mirror: d.mirror, Epoch: d.epoch, Recorded: recorded}
	}
	return nil
}

// fencedWrite runs write in a transaction that first checks the
// Destination's epoch (checkEpoch); without a claim, write runs alone.
func (d *Destination) fencedWrite(ctx context.Context, write func(db Execer) error) error {
	if d.epoch == 0 {
		return write(d.conn)
	}
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		if err := d.checkEpoch(ctx, tx); err != nil {
			return err
		}
		return write(tx)
	})
}

// checkLoadEpoch refuses, with a *connectors.FencedError, a partition of
// a load planned under lease epoch epoch when mirror's metadata row
// records a later one: a node that took the mirror over claimed the
// destination (Fence), and the load is stale. A load without an epoch (0:
// a flow without a lease, or a job queued by an older Sluice) checks
// nothing, and so does a mirror without a row (no claim yet).
//
// A load calls it twice in the transaction that copies the partition:
// first without a lock (a stale partition is not copied for nothing),
// then with lock, just before recording the partition done. The lock is
// FOR UPDATE, held until the transaction ends: a claim cannot pass
// between this check and the commit (it waits, as for an applier's
// batch), so a stale partition either committed before the claim (and
// counts as loaded before the owner changed, as if its node had died
// then) or is refused, rows and all. FOR UPDATE rather than FOR SHARE,
// although partitions only read the row: the share locks of partitions
// committing at once would make the row's locker a multixact, in which
// Fence cannot find the session to end when a frozen node holds it
// (endRowHolder reads the row's xmax); an exclusive lock held for the
// few milliseconds of a commit keeps the locker one transaction.
func checkLoadEpoch(ctx context.Context, tx pgx.Tx, meta, mirror string, epoch int64, lock bool) error {
	if epoch == 0 {
		return nil
	}
	q := "SELECT epoch FROM " + metaSchema(meta) + ".mirror_state WHERE mirror = $1"
	if lock {
		q += " FOR UPDATE"
	}
	var recorded int64
	err := tx.QueryRow(ctx, q, mirror).Scan(&recorded)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the lease epoch of mirror %s: %w", mirror, err)
	}
	if recorded > epoch {
		return &connectors.FencedError{Mirror: mirror, Epoch: epoch, Recorded: recorded}
	}
	return nil
}

// Fence records epoch in mirror's metadata row (mirror_state.epoch,
// making the row when missing), unless a later epoch is recorded: then it
// returns a *connectors.FencedError and changes nothing. The same epoch
// again is accepted, without a lock. EnsureMetadata must have run.
//
// An applier holds the row locked (SELECT ... FOR UPDATE) from its Begin
// to its Commit. A node frozen in the middle of a batch (SIGSTOP, a VM
// paused) keeps that transaction open, and its lock, for as long as it is
// frozen: the Postgres backend only waits for its client. Fence therefore
// waits at most fenceLockTimeout for the row, then ends the session that
// holds it and tries again. That session is found exactly: the row's
// xmax is the locking transaction, whose holder pg_locks names; only a
// session whose application_name starts with "sluice" is ended (the
// appliers of a mirror are the only ones that lock its row). Ending it
// rolls the stale batch back: it applied nothing, and on waking the stale
// node finds its connection gone, and then the later epoch.
//
// Why not idle_in_transaction_session_timeout on the applier's session:
// a batch's transaction is legitimately idle while the source streams a
// long transaction slowly, and a node frozen in the middle of a COPY is
// not "idle in transaction" at all; ending the one session that holds the
// row, when a new owner needs it, covers both and costs nothing otherwise.
//
// It returns what it ended, one line each.
func Fence(ctx context.Context, conn *pgx.Conn, meta, mirror string, epoch int64) (ended []string, err error) {
	if epoch <= 0 {
		return nil, fmt.Errorf("fence mirror %s: epoch %d is not positive", mirror, epoch)
	}
	s := metaSchema(meta)
	// Claimed already (a step of the same run again, or another step of
	// it running beside the stream): nothing to lock, and above all no
	// session to end, since the one holding the row is this epoch's own
	// applier.
	switch recorded, err := Epoch(ctx, conn, meta, mirror); {
	case err != nil:
		return nil, fmt.Errorf("fence mirror %s at epoch %d: %w", mirror, epoch, err)
	case recorded == epoch:
		return nil, nil
	case recorded > epoch:
		return nil, &connectors.FencedError{Mirror: mirror, Epoch: epoch, Recorded: recorded}
	}
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", fenceLockTimeout.Milliseconds())); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+s+".mirror_state (mirror, lsn) VALUES ($1, 0) ON CONFLICT (mirror) DO NOTHING",
				mirror); err != nil {
				return err
			}
			var recorded int64
			if err := tx.QueryRow(ctx, "SELECT epoch FROM "+s+".mirror_state WHERE mirror = $1 FOR UPDATE", mirror).Scan(&recorded); err != nil {
				return err
			}
			if recorded > epoch {
				return &connectors.FencedError{Mirror: mirror, Epoch: epoch, Recorded: recorded}
			}
			if recorded == epoch {
				return nil
			}
			_, err := tx.Exec(ctx, "UPDATE "+s+".mirror_state SET epoch = $2 WHERE mirror = $1", mirror, epoch)
			return err
		})
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != pgerrcode.LockNotAvailable {
			if err != nil && !errors.Is(err, connectors.ErrFenced) {
				err = fmt.Errorf("fence mirror %s at epoch %d: %w", mirror, epoch, err)
			}
			return ended, err
		}
		if attempt == fenceAttempts {
			return ended, fmt.Errorf("fence mirror %s at epoch %d: its metadata row stayed locked (%d attempts): %w",
				mirror, epoch, attempt, err)
		}
		more, err := endRowHolder(ctx, conn, s, mirror)
		if err != nil {
			return ended, fmt.Errorf("fence mirror %s at epoch %d: %w", mirror, epoch, err)
		}
		ended = append(ended, more...)
	}
}

// endRowHolder terminates the Sluice session whose transaction holds
// mirror's metadata row locked, if any, and returns what it ended.
func endRowHolder(ctx context.Context, conn *pgx.Conn, s, mirror string) ([]string, error) {
	rows, err := conn.Query(ctx, `
SELECT a.pid, a.application_name, pg_terminate_backend(a.pid)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
  AND l.transactionid = (SELECT xmax FROM `+s+`.mirror_state WHERE mirror = $1)
  AND a.pid <> pg_backend_pid() AND a.application_name LIKE 'sluice%'`, mirror)
	if err != nil {
		return nil, fmt.Errorf("end the session holding the metadata row: %w", err)
	}
	var out []string
	var pid int32
	var app string
	var ok bool
	_, err = pgx.ForEachRow(rows, []any{&pid, &app, &ok}, func() error {
		out = append(out, fmt.Sprintf("terminated destination session pid %d (%s), a stale node's open transaction of the mirror", pid, app))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("end the session holding the metadata row: %w", err)
	}
	return out, nil
}

// setPosition records pos in the open transaction (SetPosition). A fenced
// applier writes its epoch with it, where the recorded epoch is still its
// own: the check Begin made holds until the commit (the row is locked),
// and this one, in the same transaction, refuses the commit with a
// *connectors.FencedError should it not.
func (a *Applier) setPosition(ctx context.Context, pos connectors.Position) error {
	if a.epoch == 0 {
		return SetPosition(ctx, a.tx, a.meta, a.mirror, pos)
	}
	tag, err := a.tx.Exec(ctx, "UPDATE "+metaSchema(a.meta)+`.mirror_state SET lsn = $2, position = $3, epoch = $4, updated_at = now()
WHERE mirror = $1 AND epoch = $4`, a.mirror, lsnColumn(pos), string(pos), a.epoch)
	if err == nil && tag.RowsAffected() == 0 {
		var recorded int64
		if recorded, err = Epoch(ctx, a.conn, a.meta, a.mirror); err == nil {
			return &connectors.FencedError{Mirror: a.mirror, Epoch: a.epoch, Recorded: recorded}
		}
	}
	if err != nil {
		return fmt.Errorf("record position of mirror %s: %w", a.mirror, err)
	}
	return nil
}

// Epoch returns the lease epoch recorded for mirror (0: none). It only
// reads; EnsureMetadata must have run.
func Epoch(ctx context.Context, conn *pgx.Conn, meta, mirror string) (int64, error) {
	var epoch int64
	err := conn.QueryRow(ctx, "SELECT epoch FROM "+metaSchema(meta)+".mirror_state WHERE mirror = $1", mirror).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the lease epoch of mirror %s: %w", mirror, err)
	}
	return epoch, nil
}

// TakeStream implements connectors.StreamTaker: it terminates the
// walsender that holds spec's slot active (pg_terminate_backend of that
// slot's active_pid, nothing else), and waits until the slot is free,
// terminating it again while it lingers (see takeResignal).
func (s *Source) TakeStream(ctx context.Context, spec connectors.StreamSpec) ([]string, error) {
	var pid int32
	var app string
	err := s.conn.QueryRow(ctx, `
SELECT r.active_pid, coalesce(a.application_name, '')
FROM pg_replication_slots r LEFT JOIN pg_stat_activity a ON a.pid = r.active_pid
WHERE r.slot_name = $1 AND r.database = current_database() AND r.active`, spec.Slot).Scan(&pid, &app)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the reader of replication slot %q: %w", spec.Slot, err)
	}
	if _, err := s.conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		return nil, fmt.Errorf("terminate walsender pid %d of replication slot %q: %w", pid, spec.Slot, err)
	}
	ended := []string{fmt.Sprintf("terminated walsender pid %d (%s) that held replication slot %q active", pid, app, spec.Slot)}
	deadline := time.Now().Add(takeWait)
	signalled := time.Now()
	for {
		var active bool
		err := s.conn.QueryRow(ctx, `SELECT active_pid IS NOT DISTINCT FROM $2::int FROM pg_replication_slots
WHERE slot_name = $1 AND database = current_database()`, spec.Slot, pid).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !active) {
			return ended, nil
		}
		if err != nil {
			return ended, fmt.Errorf("wait for replication slot %q: %w", spec.Slot, err)
		}
		if time.Now().After(deadline) {
			return ended, fmt.Errorf("replication slot %q is still held by pid %d %s after its termination", spec.Slot, pid, takeWait)
		}
		if time.Since(signalled) > takeResignal {
			// A walsender whose client froze with its socket full can
			// block sending its own termination message; another SIGTERM
			// interrupts that send.
			if _, err := s.conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
				return ended, fmt.Errorf("terminate walsender pid %d of replication slot %q: %w", pid, spec.Slot, err)
			}
			signalled = time.Now()
		}
		select {
		case <-ctx.Done():
			return ended, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
