package catalog

import (
	"context"
	"fmt"
)

// MirrorObjects are the objects mirrors own on their sources, by name: the
// replication slot and the publication each mirror streams through.
type MirrorObjects struct {
	// Slots maps a replication slot's name to the mirror that owns it.
	Slots map[string]string
	// Publications maps a publication's name to the mirror that owns it.
	Publications map[string]string
}

// Empty reports whether no mirror owns anything.
func (o MirrorObjects) Empty() bool { return len(o.Slots) == 0 && len(o.Publications) == 0 }

// OwnedObjects reads the slot and publication names of every mirror, as
// recorded when the mirror was created (a full resync makes them again
// under the same names). A table resync's temporary slot is not listed: it
// lives only while the connection that made it, which holds it, is open.
// Safe for concurrent use.
func (s *Store) OwnedObjects(ctx context.Context) (MirrorObjects, error) {
	o := MirrorObjects{Slots: map[string]string{}, Publications: map[string]string{}}
	rows, err := s.pool.Query(ctx, `SELECT name, slot_name, publication_name FROM sluice.mirrors ORDER BY name`)
	if err != nil {
		return o, fmt.Errorf("list mirror slots and publications: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var mirror, slot, pub string
		if err := rows.Scan(&mirror, &slot, &pub); err != nil {
			return o, fmt.Errorf("list mirror slots and publications: %w", err)
		}
		o.Slots[slot] = mirror
		o.Publications[pub] = mirror
	}
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("list mirror slots and publications: %w", err)
	}
	return o, nil
}
