package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
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
	// Active is whether a reader streams from the slot now.
	Active *bool
	// Warning is the source's warning that the mirror may soon lose its
	// stream ("": none).
	Warning string
}

// SetSlotLag records a measurement of the mirror's slot, made now, and
// returns whether its Warning is new: there is one, and the measurement
// before had none (the warning is recorded as an event once, until it
// clears, whichever node measured before). A missing mirror is not an
// error (it was dropped meanwhile): nothing is new.
func (s *Store) SetSlotLag(ctx context.Context, name string, l SlotLag) (newWarning bool, err error) {
	var warning *string
	if l.Warning != "" {
		warning = &l.Warning
	}
	var before *string
	err = s.pool.QueryRow(ctx, `
UPDATE sluice.mirrors m SET lag_bytes = $2, slot_wal_status = $3, slot_safe_wal_size = $4, slot_active = $5,
       lag_warning = $6, lag_measured_at = now()
FROM (SELECT name, lag_warning FROM sluice.mirrors WHERE name = $1 FOR UPDATE) o
WHERE m.name = o.name
RETURNING o.lag_warning`, name, l.Bytes, l.WALStatus, l.SafeWALSize, l.Active, warning).Scan(&before)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("set lag of mirror %q: %w", name, err)
	}
	return warning != nil && before == nil, nil
}

// SetLagUnknown records that the mirror's slot could not be measured (the
// source is unreachable): lag, wal_status, safe_wal_size and whether the
// slot is active become NULL, lag_measured_at keeps the time of the last
// measurement, and the warning in effect stays.
func (s *Store) SetLagUnknown(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `
UPDATE sluice.mirrors SET lag_bytes = NULL, slot_wal_status = NULL, slot_safe_wal_size = NULL, slot_active = NULL
WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("set lag of mirror %q: %w", name, err)
	}
	return nil
}
