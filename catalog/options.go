package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// UpdateMirrorOptions changes the stored options of mirror name (ALTER
// MIRROR): in one transaction that locks the mirror's row, change gets
// the options as stored and returns the options to store and the message
// of the "options" event recorded with them. An empty message stores
// nothing (nothing changed); an error from change stores nothing and is
// returned as it is. It fails wrapping ErrMirrorNotFound when the mirror
// does not exist. Concurrent calls for one mirror run one after the other,
// so neither loses the other's change.
func (s *Store) UpdateMirrorOptions(ctx context.Context, name string,
	change func(old map[string]string) (opts map[string]string, event string, err error)) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var raw []byte
		err := tx.QueryRow(ctx, `SELECT options FROM sluice.mirrors WHERE name = $1 FOR UPDATE`, name).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("update options of mirror %q: %w", name, ErrMirrorNotFound)
		}
		if err != nil {
			return fmt.Errorf("update options of mirror %q: %w", name, err)
		}
		old := map[string]string{}
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("update options of mirror %q: decode options: %w", name, err)
		}
		opts, event, err := change(old)
		if err != nil || event == "" {
			return err
		}
		enc, err := json.Marshal(opts)
		if err != nil {
			return fmt.Errorf("update options of mirror %q: encode options: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE sluice.mirrors SET options = $2, updated_at = now() WHERE name = $1`, name, enc); err != nil {
			return fmt.Errorf("update options of mirror %q: %w", name, err)
		}
		return addEvent(ctx, tx, name, "options", event)
	})
}
