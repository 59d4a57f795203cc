package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// The checks a Postgres source answers before a mirror is made
// (connectors.MirrorChecker), and its measure of the mirrors' slots
// (connectors.LagReporter).

var (
	_ connectors.MirrorChecker = (*Source)(nil)
	_ connectors.LagReporter   = (*Source)(nil)
)

// CanStream implements connectors.MirrorChecker: the server needs
// wal_level = logical, a user with the REPLICATION privilege, and Postgres
// 12 or later (ServerInfo.CanBeSource).
func (s *Source) CanStream(ctx context.Context) error {
	info, err := s.peer.Inspect(ctx)
	if err != nil {
		return err
	}
	if ok, why := info.CanBeSource(); !ok {
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "cannot be a CDC source: %s", why).
			WithHint("A source needs wal_level = logical and a user with the REPLICATION privilege.")
	}
	return nil
}

// NamesFree implements connectors.MirrorChecker: neither spec's
// publication nor its slot exists.
func (s *Source) NamesFree(ctx context.Context, spec connectors.StreamSpec) error {
	var pub bool
	err := s.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, spec.Publication).Scan(&pub)
	if err != nil {
		return fmt.Errorf("look up publication %q: %w", spec.Publication, err)
	}
	if pub {
		return sqlerr.New(pgerrcode.DuplicateObject, "publication %q already exists on the source", spec.Publication).
			WithHint("Choose another name with publication_name, or drop the publication.")
	}
	slot, err := SlotExists(ctx, s.conn, spec.Slot)
	if err != nil {
		return err
	}
	if slot {
		return sqlerr.New(pgerrcode.DuplicateObject, "replication slot %q already exists on the source", spec.Slot).
			WithHint("Choose another name with replication_slot_name, or drop the slot.")
	}
	return nil
}

// StreamLags implements connectors.LagReporter from pg_replication_slots:
// the WAL written beyond each slot's confirmed position, its wal_status,
// safe_wal_size and whether a reader streams from it (active); a slot whose wal_status is lost is Lost, and one
// whose wal_status is unreserved has a Warning.
func (s *Source) StreamLags(ctx context.Context, specs []connectors.StreamSpec) (map[string]connectors.StreamLag, error) {
	names := make([]string, len(specs))
	bySlot := make(map[string][]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.Slot
		bySlot[sp.Slot] = append(bySlot[sp.Slot], sp.Mirror)
	}
	rows, err := s.conn.Query(ctx, `
SELECT slot_name::text, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
       wal_status, safe_wal_size, active
FROM pg_replication_slots WHERE database = current_database() AND slot_name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("read replication slots: %w", err)
	}
	out := make(map[string]connectors.StreamLag)
	var name string
	var l connectors.StreamLag
	_, err = pgx.ForEachRow(rows, []any{&name, &l.Bytes, &l.Status, &l.SafeBytes, &l.Active}, func() error {
		l.Lost = l.Status != nil && *l.Status == "lost"
		if l.Status != nil && *l.Status == "unreserved" {
			l.Warning = fmt.Sprintf("replication slot %q holds more WAL than max_slot_wal_keep_size allows: "+
				"the source removes it at its next checkpoint unless the mirror catches up", name)
		}
		for _, m := range bySlot[name] {
			out[m] = l
		}
		l = connectors.StreamLag{}
		return nil
	})
	if err != nil {
		return nil, errors.Join(errors.New("read replication slots"), err)
	}
	return out, nil
}
