package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Slot health and progress, as the flows see them; the lag monitor
// (monitor.go) watches the same slots from outside the flows.

// lostSlotError is the error of a mirror whose slot the source invalidated
// (wal_status lost): the WAL it needed is gone, so only a resync recovers.
func lostSlotError(mirror, slot, peer string) error {
	return &userError{err: fmt.Errorf("replication slot %q on peer %q was invalidated: the source removed WAL the slot "+
		"still needed (max_slot_wal_keep_size exceeded), so changes since the mirror's position are lost; "+
		"RESYNC MIRROR %s recovers the mirror by reloading it", slot, peer, mirror)}
}

// slotStatus returns the wal_status of the mirror's slot ("" when there is
// no slot or it does not say).
func (f *flow) slotStatus(ctx context.Context, src *pgx.Conn) (string, error) {
	var status *string
	err := src.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
		f.cfg.Slot).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read replication slot %q: %w", f.cfg.Slot, err)
	}
	if status == nil {
		return "", nil
	}
	return *status, nil
}

// checkSlot fails with lostSlotError when the source invalidated the slot.
func (f *flow) checkSlot(ctx context.Context, src *pgx.Conn) error {
	status, err := f.slotStatus(ctx, src)
	if err != nil {
		return err
	}
	if status == "lost" {
		return lostSlotError(f.m.Name, f.cfg.Slot, f.m.SourcePeer)
	}
	return nil
}

// explainStreamError turns the error that stopped the stream into
// lostSlotError when the slot was invalidated (the source ends the stream
// of a slot it invalidates, and then refuses to stream from it), checking
// on a connection of its own; other errors are returned as they are.
func (f *flow) explainStreamError(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, errRestart) {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	src, cerr := f.src.ConnectSQL(cctx, "sluice-cdc")
	if cerr != nil {
		return err
	}
	defer src.Close(context.Background())
	if lost := f.checkSlot(cctx, src); needsUser(lost) {
		return lost
	}
	return err
}

// progressed records that the step made progress: the supervisor's retry
// delay starts over, and an error recorded before is cleared with a
// "recovered" event. Only the first call of a step does anything.
func (f *flow) progressed(ctx context.Context) error {
	if f.progressDone {
		return nil
	}
	f.progressDone = true
	if f.onProgress != nil {
		f.onProgress()
	}
	return f.ex.cfg.Store.ClearError(ctx, f.m.Name)
}
