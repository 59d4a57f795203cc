package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// ErrMirrorNotFound is wrapped when no mirror has the name.
var ErrMirrorNotFound = errors.New("mirror does not exist")

// ErrMirrorExists is wrapped by CreateMirror when the name is taken.
var ErrMirrorExists = errors.New("mirror already exists")

// Mirror phases: the step of the flow a mirror is in. The status shown to
// users derives from the phase, the desired state and the error, and uses
// the same words: a phase is stored, and recorded in "phase" events, as
// the status it shows (mirrors.status), so the two never disagree.
const (
	PhaseSetup    = "SETUP"
	PhaseSnapshot = "SNAPSHOT"
	// PhaseCDC is streaming changes from the slot (status RUNNING).
	PhaseCDC = "RUNNING"
	// PhaseResync is the swap at the end of a full-mirror resync.
	PhaseResync = "RESYNC"
)

// Table resync states (mirror_tables.resync_status).
const (
	ResyncPending    = "pending"
	ResyncInProgress = "in_progress"
	ResyncDone       = "done"
	ResyncFailed     = "failed"
)

// ResyncMirrorKind is Mirror.Resync during a full-mirror resync.
const ResyncMirrorKind = "mirror"

// ErrResyncInProgress is wrapped by StartTableResync when the table is
// already being resynced.
var ErrResyncInProgress = errors.New("a resync of the table is already under way")

// Desired states of a mirror, set by the operator.
const (
	DesiredRunning = "RUNNING"
	DesiredPaused  = "PAUSED"
)

// Mirror is a CDC mirror as stored in the catalog.
type Mirror struct {
	Name            string
	SourcePeer      string
	DestinationPeer string
	// Options are the validated mirror options (key to value text).
	Options     map[string]string
	Phase       string
	Desired     string
	Publication string
	Slot        string
	// ConsistentPosition is where the stream starts after the initial
	// load ("" until the mirror's stream was prepared); ConsistentVersion
	// is the load's version, the same point as a number (0 until then).
	ConsistentPosition connectors.Position
	ConsistentVersion  uint64
	// LastSyncedPosition is the end of the last applied batch ("": none).
	LastSyncedPosition connectors.Position
	Error              string
	// ErrorNeedsAction says Error needs the user to act (see
	// SetActionError): the mirror does not retry until then.
	ErrorNeedsAction bool
	// Resync is ResyncMirrorKind while a full-mirror resync is under way,
	// else empty.
	Resync    string
	Tables    []MirrorTable
	CreatedAt time.Time
}

// MirrorTable is one table mapping of a mirror and its progress.
type MirrorTable struct {
	Source       string // schema.table on the source
	Destination  string // schema.table on the destination
	PartitionKey string
	Exclude      []string
	// OrderBy is the sorting key on a ClickHouse destination (empty: the
	// primary key).
	OrderBy []string
	Status  string
	// Partitions is the snapshot plan (JSON owned by the executor); nil
	// until planned.
	Partitions      json.RawMessage
	PartitionsTotal int
	PartitionsDone  int
	RowsCopied      int64
	RowsEstimated   int64
	// ResyncStatus is one of the Resync* states, empty if never resynced;
	// ResyncStrategy the strategy of the last resync (swap or truncate).
	ResyncStatus   string
	ResyncStrategy string
}

// CreateMirror stores m and its tables in one transaction, with a "created"
// event. With reserve > 0 the new mirror's free lease is reserved that long
// (see ReserveLease): the statement that creates it prepares its
// publication and tables, or undoes them, before any node's periodic look
// may run it, and then lifts the reservation (Unreserve). It fails with an
// error wrapping ErrMirrorExists when the name is taken. Not idempotent.
func (s *Store) CreateMirror(ctx context.Context, m Mirror, reserve time.Duration) error {
	opts, err := json.Marshal(m.Options)
	if err != nil {
		return fmt.Errorf("create mirror %q: encode options: %w", m.Name, err)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
INSERT INTO sluice.mirrors (name, source_peer, destination_peer, options, phase, desired, publication_name, slot_name,
    lease_expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $9::interval > '0'::interval THEN now() + $9::interval END)`,
			m.Name, m.SourcePeer, m.DestinationPeer, opts, PhaseSetup, DesiredRunning, m.Publication, m.Slot, reserve)
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
			return fmt.Errorf("create mirror %q: %w", m.Name, ErrMirrorExists)
		}
		if err != nil {
			return fmt.Errorf("create mirror %q: %w", m.Name, err)
		}
		for i, t := range m.Tables {
			exclude := t.Exclude
			if exclude == nil {
				exclude = []string{}
			}
			orderBy := t.OrderBy
			if orderBy == nil {
				orderBy = []string{}
			}
			_, err := tx.Exec(ctx, `
INSERT INTO sluice.mirror_tables (mirror, source_table, destination_table, ordinal, partition_key, exclude, order_by)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7)`, m.Name, t.Source, t.Destination, i, t.PartitionKey, exclude, orderBy)
			if err != nil {
				return fmt.Errorf("create mirror %q: table %s: %w", m.Name, t.Source, err)
			}
		}
		return addEvent(ctx, tx, m.Name, "created", fmt.Sprintf("mirror created from %s to %s with %d tables",
			m.SourcePeer, m.DestinationPeer, len(m.Tables)))
	})
}

// GetMirror returns the mirror named name with its tables in mapping order.
func (s *Store) GetMirror(ctx context.Context, name string) (Mirror, error) {
	rows, err := s.pool.Query(ctx, `
SELECT name, source_peer, destination_peer, options, phase, desired, publication_name, slot_name,
       coalesce(consistent_position, ''), coalesce(consistent_lsn, 0), coalesce(last_synced_position, ''),
       coalesce(error, ''), created_at,
       coalesce(resync, ''), error_action AND error IS NOT NULL
FROM sluice.mirrors WHERE name = $1`, name)
	if err != nil {
		return Mirror{}, fmt.Errorf("get mirror %q: %w", name, err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMirror)
	if errors.Is(err, pgx.ErrNoRows) {
		return Mirror{}, fmt.Errorf("get mirror %q: %w", name, ErrMirrorNotFound)
	}
	if err != nil {
		return Mirror{}, fmt.Errorf("get mirror %q: %w", name, err)
	}
	rows, err = s.pool.Query(ctx, `
SELECT source_table, destination_table, coalesce(partition_key, ''), exclude, order_by, status, partitions,
       partitions_total, partitions_done, rows_copied, rows_estimated,
       coalesce(resync_status, ''), coalesce(resync_strategy, '')
FROM sluice.mirror_tables WHERE mirror = $1 ORDER BY ordinal`, name)
	if err != nil {
		return Mirror{}, fmt.Errorf("get mirror %q tables: %w", name, err)
	}
	m.Tables, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (MirrorTable, error) {
		var t MirrorTable
		var parts []byte
		err := row.Scan(&t.Source, &t.Destination, &t.PartitionKey, &t.Exclude, &t.OrderBy, &t.Status, &parts,
			&t.PartitionsTotal, &t.PartitionsDone, &t.RowsCopied, &t.RowsEstimated, &t.ResyncStatus, &t.ResyncStrategy)
		if parts != nil {
			t.Partitions = parts
		}
		return t, err
	})
	if err != nil {
		return Mirror{}, fmt.Errorf("get mirror %q tables: %w", name, err)
	}
	return m, nil
}

func scanMirror(row pgx.CollectableRow) (Mirror, error) {
	var m Mirror
	var opts []byte
	var consistent, synced string
	var version int64
	err := row.Scan(&m.Name, &m.SourcePeer, &m.DestinationPeer, &opts, &m.Phase, &m.Desired, &m.Publication,
		&m.Slot, &consistent, &version, &synced, &m.Error, &m.CreatedAt, &m.Resync, &m.ErrorNeedsAction)
	if err != nil {
		return m, err
	}
	m.ConsistentPosition, m.ConsistentVersion = connectors.Position(consistent), uint64(version)
	m.LastSyncedPosition = connectors.Position(synced)
	if err := json.Unmarshal(opts, &m.Options); err != nil {
		return m, fmt.Errorf("decode options: %w", err)
	}
	return m, nil
}

// MirrorNames lists every mirror's name.
func (s *Store) MirrorNames(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM sluice.mirrors ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list mirrors: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// MirrorsUsingPeer lists the mirrors whose source or destination is peer.
func (s *Store) MirrorsUsingPeer(ctx context.Context, peer string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
SELECT name FROM sluice.mirrors WHERE source_peer = $1 OR destination_peer = $1 ORDER BY name`, peer)
	if err != nil {
		return nil, fmt.Errorf("list mirrors of peer %q: %w", peer, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// DeleteMirror removes the mirror, its tables, its lag history and its
// finished jobs, with a "dropped" event.
func (s *Store) DeleteMirror(ctx context.Context, name string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM sluice.mirrors WHERE name = $1`, name)
		if err != nil {
			return fmt.Errorf("delete mirror %q: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("delete mirror %q: %w", name, ErrMirrorNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sluice.mirror_lag_history WHERE mirror = $1`, name); err != nil {
			return fmt.Errorf("delete mirror %q: lag history: %w", name, err)
		}
		// Its finished jobs; one that may still run ends on its own (its
		// mirror is gone) and is cleaned up by River.
		_, err = tx.Exec(ctx, `DELETE FROM sluice.river_job WHERE args @> jsonb_build_object('mirror', $1::text)
  AND state IN ('completed', 'cancelled', 'discarded')`, name)
		if err != nil {
			return fmt.Errorf("delete mirror %q: jobs: %w", name, err)
		}
		return addEvent(ctx, tx, name, "dropped", "mirror dropped")
	})
}

// DiscardMirror undoes CreateMirror for a CREATE MIRROR that failed before
// its mirror ran: it removes the mirror, its tables and every event since
// its "created" event (events of an earlier mirror of the same name stay),
// in one transaction and with no "dropped" event, so that the refused
// statement leaves no trace. It fails wrapping ErrMirrorNotFound when the
// mirror is gone. Not for a mirror that ran: use DeleteMirror.
func (s *Store) DiscardMirror(ctx context.Context, name string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM sluice.mirrors WHERE name = $1`, name)
		if err != nil {
			return fmt.Errorf("discard mirror %q: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("discard mirror %q: %w", name, ErrMirrorNotFound)
		}
		// A lag sample may have been taken while the statement ran.
		if _, err := tx.Exec(ctx, `DELETE FROM sluice.mirror_lag_history WHERE mirror = $1`, name); err != nil {
			return fmt.Errorf("discard mirror %q: lag history: %w", name, err)
		}
		_, err = tx.Exec(ctx, `
DELETE FROM sluice.mirror_events
WHERE mirror = $1 AND id >= (SELECT max(id) FROM sluice.mirror_events WHERE mirror = $1 AND kind = 'created')`, name)
		if err != nil {
			return fmt.Errorf("discard mirror %q: events: %w", name, err)
		}
		return nil
	})
}

// update runs one UPDATE of sluice.mirrors for mirror name, with an event
// when kind is not empty. It fails wrapping ErrMirrorNotFound when the
// mirror is gone, and wrapping ErrLeaseLost when ctx carries a lease the
// mirror no longer has (WithLease).
func (s *Store) update(ctx context.Context, name, kind, message, sql string, args ...any) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, name); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sql, append([]any{name}, args...)...)
		if err != nil {
			return fmt.Errorf("update mirror %q: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("update mirror %q: %w", name, ErrMirrorNotFound)
		}
		if kind == "" {
			return nil
		}
		return addEvent(ctx, tx, name, kind, message)
	})
}

// SetPhase moves the mirror to phase, clearing any error, with an event.
func (s *Store) SetPhase(ctx context.Context, name, phase string) error {
	return s.update(ctx, name, "phase", "phase "+phase, `
UPDATE sluice.mirrors SET phase = $2, error = NULL, error_count = 0, updated_at = now() WHERE name = $1`, phase)
}

// SetConsistentPosition records where the mirror's stream starts after the
// initial load (a Postgres replication slot's consistent point), pos, and
// the load's version, the same point as a number (connectors.Snapshot),
// with a "slot" event that shows pos as shown (the source kind's
// rendering).
func (s *Store) SetConsistentPosition(ctx context.Context, name string, pos connectors.Position, version uint64, shown string) error {
	return s.update(ctx, name, "slot", fmt.Sprintf("change stream starts at %s", shown), `
UPDATE sluice.mirrors SET consistent_position = $2, consistent_lsn = $3, updated_at = now() WHERE name = $1`,
		string(pos), int64(version))
}

// SetDesired records the operator's intent (DesiredRunning or DesiredPaused).
// The user acted: an error that waited for it (SetActionError) stays shown
// but no longer stops the mirror from retrying.
func (s *Store) SetDesired(ctx context.Context, name, desired string) error {
	kind := "resumed"
	if desired == DesiredPaused {
		kind = "paused"
	}
	return s.update(ctx, name, kind, "mirror "+kind, `
UPDATE sluice.mirrors SET desired = $2, error_action = false, updated_at = now() WHERE name = $1`, desired)
}

// SetError records a failing step (the mirror shows FAILED) with an event.
// An error that needs the user to act (SetActionError) stays in place: msg
// then only goes into the event.
func (s *Store) SetError(ctx context.Context, name, msg string) error {
	return s.update(ctx, name, "error", msg, `
UPDATE sluice.mirrors
SET error = CASE WHEN error_action AND error IS NOT NULL THEN error ELSE $2 END,
    error_action = error_action AND error IS NOT NULL,
    error_count = error_count + 1, updated_at = now()
WHERE name = $1`, msg)
}

// SetActionError records an error that needs the user to act (RESYNC
// MIRROR, PAUSE and RESUME, DROP MIRROR): the mirror shows FAILED with msg
// and does not retry until then. Idempotent: recording the same message
// again adds no event.
func (s *Store) SetActionError(ctx context.Context, name, msg string) error {
	var same bool
	err := s.pool.QueryRow(ctx, `SELECT coalesce(error_action AND error = $2, false) FROM sluice.mirrors WHERE name = $1`,
		name, msg).Scan(&same)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("update mirror %q: %w", name, ErrMirrorNotFound)
	}
	if err != nil {
		return fmt.Errorf("update mirror %q: %w", name, err)
	}
	if same {
		return nil
	}
	return s.update(ctx, name, "error", msg, `
UPDATE sluice.mirrors SET error = $2, error_action = true, error_count = error_count + 1, updated_at = now()
WHERE name = $1`, msg)
}

// ClearError clears the error of a mirror that recovered, with an event;
// it does nothing when there is no error.
func (s *Store) ClearError(ctx context.Context, name string) error {
	var had bool
	err := s.pool.QueryRow(ctx, `SELECT error IS NOT NULL FROM sluice.mirrors WHERE name = $1`, name).Scan(&had)
	if err != nil || !had {
		return nil
	}
	return s.update(ctx, name, "recovered", "mirror recovered", `
UPDATE sluice.mirrors SET error = NULL, error_count = 0, updated_at = now() WHERE name = $1`)
}

// TableCounts are per-table change counts of one applied batch.
type TableCounts struct{ Inserts, Updates, Deletes int64 }

// RecordSync records an applied CDC batch: the mirror's position (end,
// the batch's end; last_synced_lsn becomes its Postgres LSN, NULL when it
// is not one; shown is end as the source's kind renders it, the status
// view's position) and totals, and each table's counts, in one
// transaction. commitAt is the source's commit time of the batch's last
// transaction: it becomes last_source_commit_at, and last_synced_at the
// catalog's now() (when the batch was applied), so that the status view's
// lag_seconds is the lag of that transaction. The zero time (a batch of
// no transaction, such as a table resync catching up on an idle stream)
// keeps both, and so the lag last measured. Under a lease (WithLease) it
// fails wrapping ErrLeaseLost, writing nothing, once the lease is lost.
func (s *Store) RecordSync(ctx context.Context, name string, end connectors.Position, shown string, commitAt time.Time, rows int64, counts map[string]TableCounts) error {
	var commit *time.Time
	if !commitAt.IsZero() {
		commit = &commitAt
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkLease(ctx, tx, name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
UPDATE sluice.mirrors SET last_synced_position = $2, last_synced_lsn = sluice.position_lsn($2), last_synced_shown = $5,
       last_synced_at = CASE WHEN $3::timestamptz IS NULL THEN last_synced_at ELSE now() END,
       last_source_commit_at = coalesce($3, last_source_commit_at),
       rows_synced = rows_synced + $4, error = NULL, error_count = 0, updated_at = now()
WHERE name = $1`, name, string(end), commit, rows, shown)
		if err != nil {
			return fmt.Errorf("record sync of mirror %q: %w", name, err)
		}
		for table, c := range counts {
			_, err := tx.Exec(ctx, `
UPDATE sluice.mirror_tables SET inserts = inserts + $3, updates = updates + $4, deletes = deletes + $5
WHERE mirror = $1 AND source_table = $2`, name, table, c.Inserts, c.Updates, c.Deletes)
			if err != nil {
				return fmt.Errorf("record sync of mirror %q table %s: %w", name, table, err)
			}
		}
		return nil
	})
}

// SetTablePlan stores a table's new snapshot plan and the planner's
// estimate of its rows (a negative one counts as 0); nothing of the plan is
// copied yet, so its progress starts at zero.
func (s *Store) SetTablePlan(ctx context.Context, mirror, table string, plan json.RawMessage, total int, estimated int64) error {
	_, err := s.pool.Exec(ctx, `
UPDATE sluice.mirror_tables SET partitions = $3, partitions_total = $4, rows_estimated = greatest($5, 0),
       partitions_done = 0, rows_copied = 0,
       status = CASE WHEN status = 'resync' THEN status ELSE 'snapshot' END
WHERE mirror = $1 AND source_table = $2`, mirror, table, []byte(plan), total, estimated)
	if err != nil {
		return fmt.Errorf("set plan of %s in mirror %q: %w", table, mirror, err)
	}
	return nil
}

// SetTableProgress sets a table's copy progress: done partitions of its
// plan are loaded and rows rows are copied (those of the loaded partitions
// and those the partitions being copied have read so far; see
// executor's tableProgress). rows_estimated is kept at or above rows:
// raised when the copy passes the planner's estimate, and set to rows
// exactly once every partition is loaded. Idempotent.
func (s *Store) SetTableProgress(ctx context.Context, mirror, table string, done int, rows int64) error {
	_, err := s.pool.Exec(ctx, `
UPDATE sluice.mirror_tables SET partitions_done = $3, rows_copied = $4,
       rows_estimated = CASE WHEN partitions_total > 0 AND $3 >= partitions_total THEN $4
                             ELSE greatest(rows_estimated, $4) END
WHERE mirror = $1 AND source_table = $2`,
		mirror, table, done, rows)
	if err != nil {
		return fmt.Errorf("set progress of %s in mirror %q: %w", table, mirror, err)
	}
	return nil
}

// SetTableStatus sets a table's status (pending, snapshot, running, ...).
func (s *Store) SetTableStatus(ctx context.Context, mirror, table, status string) error {
	_, err := s.pool.Exec(ctx, `UPDATE sluice.mirror_tables SET status = $3 WHERE mirror = $1 AND source_table = $2`,
		mirror, table, status)
	if err != nil {
		return fmt.Errorf("set status of %s in mirror %q: %w", table, mirror, err)
	}
	return nil
}

// AddEvent appends an event to the mirror's history.
func (s *Store) AddEvent(ctx context.Context, mirror, kind, message string) error {
	return addEvent(ctx, s.pool, mirror, kind, message)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func addEvent(ctx context.Context, db execer, mirror, kind, message string) error {
	_, err := db.Exec(ctx, `INSERT INTO sluice.mirror_events (mirror, kind, message) VALUES ($1, $2, $3)`,
		mirror, kind, message)
	if err != nil {
		return fmt.Errorf("add event to mirror %q: %w", mirror, err)
	}
	return nil
}

// FormatLSN renders an LSN as Postgres does, e.g. 0/16B3748.
func FormatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn)) }

// FormatPosition renders a position for messages: a Postgres LSN (16
// upper-case hexadecimal digits, postgres.LSNPosition) and "" as FormatLSN
// does, e.g. 0/16B3748 and 0/0; any other position as it is. Pure.
func FormatPosition(p connectors.Position) string {
	if p == "" {
		return FormatLSN(0)
	}
	if len(p) == 16 && strings.Trim(string(p), "0123456789ABCDEF") == "" {
		if lsn, err := strconv.ParseUint(string(p), 16, 64); err == nil {
			return FormatLSN(lsn)
		}
	}
	return string(p)
}
