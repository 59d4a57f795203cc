package catalog

import (
	"context"
	"fmt"
)

// SlotLag is one measurement of a mirror's replication slot on the source.
// Nil fields are unknown (NULL): no slot, or a slot that does not say.
type SlotLag struct {
	// Bytes is pg_current_wal_lsn() - confirmed_flush_lsn.
	Bytes *int64
	// WALStatus is the slot's wal_status (reserved, extended, unreserved,
	// lost).
	WALStatus *string
	// SafeWALSize is the slot's safe_wal_size.
	SafeWALSize *int64
}

// SetSlotLag records a measurement of the mirror's slot, made now. A
// missing mirror is not an error (it was dropped meanwhile).
func (s *Store) SetSlotLag(ctx context.Context, name string, l SlotLag) error {
	_, err := s.pool.Exec(ctx, `
UPDATE sluice.mirrors SET lag_bytes = $2, slot_wal_status = $3, slot_safe_wal_size = $4, lag_measured_at = now()
WHERE name = $1`, name, l.Bytes, l.WALStatus, l.SafeWALSize)
	if err != nil {
		return fmt.Errorf("set lag of mirror %q: %w", name, err)
	}
	return nil
}

// SetLagUnknown records that the mirror's slot could not be measured (the
// source is unreachable): lag, wal_status and safe_wal_size become NULL and
// lag_measured_at keeps the time of the last measurement.
func (s *Store) SetLagUnknown(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `
UPDATE sluice.mirrors SET lag_bytes = NULL, slot_wal_status = NULL, slot_safe_wal_size = NULL WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("set lag of mirror %q: %w", name, err)
	}
	return nil
}
