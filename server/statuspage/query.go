package statuspage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Status is the JSON of /api/status: everything the page shows, read from
// one snapshot of the catalog. Nullable columns are pointers (JSON null).
type Status struct {
	// GeneratedAt is the catalog's clock when it was read; the page
	// measures ages (lag measured 5 s ago) against it, not the browser's
	// clock.
	GeneratedAt time.Time `json:"generated_at"`
	// RefreshSeconds is how often the page fetches this again.
	RefreshSeconds float64 `json:"refresh_seconds"`
	// HistorySeconds is how far back lag_history reaches.
	HistorySeconds float64 `json:"history_seconds"`
	// Error says why the catalog could not be read (with HTTP 503); empty
	// otherwise, when it is left out.
	Error   string   `json:"error,omitempty"`
	Mirrors []Mirror `json:"mirrors"`
	// Events are the latest mirror_events, newest first.
	Events []Event `json:"events"`
}

// Mirror is a row of sluice_status.mirrors with its tables and lag history.
type Mirror struct {
	Name               string     `json:"name"`
	SourcePeer         string     `json:"source_peer"`
	DestinationPeer    string     `json:"destination_peer"`
	Status             string     `json:"status"`
	Error              *string    `json:"error"`
	LagBytes           *int64     `json:"lag_bytes"`
	LagMeasuredAt      *time.Time `json:"lag_measured_at"`
	LagSeconds         *float64   `json:"lag_seconds"`
	LastSyncedAt       *time.Time `json:"last_synced_at"`
	LastSourceCommitAt *time.Time `json:"last_source_commit_at"`
	RowsSynced         *int64     `json:"rows_synced"`
	Resyncing          *bool      `json:"resyncing"`
	Position           *string    `json:"position"`
	SlotWALStatus      *string    `json:"slot_wal_status"`
	SlotSafeWALSize    *int64     `json:"slot_safe_wal_size"`
	CreatedAt          *time.Time `json:"created_at"`
	Tables             []Table    `json:"tables"`
	// LagHistory is the mirror's mirror_lag_history over the history
	// window, oldest first.
	LagHistory []LagSample `json:"lag_history"`
}

// Table is a row of sluice_status.mirror_tables.
type Table struct {
	SourceTable      string     `json:"source_table"`
	DestinationTable string     `json:"destination_table"`
	Status           string     `json:"status"`
	Step             *string    `json:"step"`
	StepStartedAt    *time.Time `json:"step_started_at"`
	RowsCopied       *int64     `json:"rows_copied"`
	RowsEstimated    *int64     `json:"rows_estimated"`
	PartitionsDone   *int64     `json:"partitions_done"`
	PartitionsTotal  *int64     `json:"partitions_total"`
	Inserts          *int64     `json:"inserts"`
	Updates          *int64     `json:"updates"`
	Deletes          *int64     `json:"deletes"`
	ResyncStatus     *string    `json:"resync_status"`
	ResyncError      *string    `json:"resync_error"`
	Error            *string    `json:"error"`
}

// LagSample is a row of sluice_status.mirror_lag_history.
type LagSample struct {
	At            time.Time `json:"at"`
	LagBytes      *int64    `json:"lag_bytes"`
	LagSeconds    *float64  `json:"lag_seconds"`
	RowsPerSecond *float64  `json:"rows_per_second"`
}

// Event is a row of sluice_status.mirror_events.
type Event struct {
	Mirror  string    `json:"mirror"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// The reads, schema-qualified so that any search_path works.
const (
	mirrorsSQL = `
SELECT name, source_peer, destination_peer, status, error, lag_bytes, lag_measured_at, lag_seconds,
       last_synced_at, last_source_commit_at, rows_synced, resyncing, position, slot_wal_status,
       slot_safe_wal_size, created_at
FROM sluice_status.mirrors ORDER BY name`
	tablesSQL = `
SELECT mirror, source_table, destination_table, status, step, step_started_at, rows_copied, rows_estimated,
       partitions_done::bigint, partitions_total::bigint, inserts, updates, deletes, resync_status, resync_error, error
FROM sluice_status.mirror_tables ORDER BY mirror, source_table`
	historySQL = `
SELECT mirror, at, lag_bytes, lag_seconds, rows_per_second
FROM sluice_status.mirror_lag_history WHERE at > $1 ORDER BY mirror, at`
	eventsSQL = `
SELECT mirror, at, kind, message FROM sluice_status.mirror_events ORDER BY at DESC LIMIT $1`
)

// read reads the whole status in one read-only snapshot of the catalog.
func (h *Handler) read(ctx context.Context) (*Status, error) {
	tx, err := h.cfg.DB.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read the catalog: %w", err)
	}
	// Read-only: ending it either way changes nothing.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	st := &Status{RefreshSeconds: h.cfg.Refresh.Seconds(), HistorySeconds: h.cfg.HistoryWindow.Seconds(),
		Mirrors: []Mirror{}, Events: []Event{}}
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&st.GeneratedAt); err != nil {
		return nil, fmt.Errorf("read the catalog's clock: %w", err)
	}
	st.GeneratedAt = st.GeneratedAt.UTC()
	if err := readMirrors(ctx, tx, st); err != nil {
		return nil, err
	}
	if err := readTables(ctx, tx, st); err != nil {
		return nil, err
	}
	if err := readHistory(ctx, tx, st, st.GeneratedAt.Add(-h.cfg.HistoryWindow)); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, eventsSQL, h.cfg.EventLimit)
	if err != nil {
		return nil, fmt.Errorf("read sluice_status.mirror_events: %w", err)
	}
	st.Events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.Mirror, &e.At, &e.Kind, &e.Message)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read sluice_status.mirror_events: %w", err)
	}
	return st, nil
}

// readMirrors fills st.Mirrors, in name order.
func readMirrors(ctx context.Context, tx pgx.Tx, st *Status) error {
	rows, err := tx.Query(ctx, mirrorsSQL)
	if err != nil {
		return fmt.Errorf("read sluice_status.mirrors: %w", err)
	}
	st.Mirrors, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Mirror, error) {
		m := Mirror{Tables: []Table{}, LagHistory: []LagSample{}}
		err := row.Scan(&m.Name, &m.SourcePeer, &m.DestinationPeer, &m.Status, &m.Error, &m.LagBytes,
			&m.LagMeasuredAt, &m.LagSeconds, &m.LastSyncedAt, &m.LastSourceCommitAt, &m.RowsSynced,
			&m.Resyncing, &m.Position, &m.SlotWALStatus, &m.SlotSafeWALSize, &m.CreatedAt)
		return m, err
	})
	if err != nil {
		return fmt.Errorf("read sluice_status.mirrors: %w", err)
	}
	return nil
}

// mirrorIndex returns the index of mirror name in st.Mirrors, or -1 (a
// table or sample of a mirror dropped between two reads cannot happen in
// one snapshot, but is skipped rather than trusted).
func mirrorIndex(st *Status) func(name string) int {
	idx := make(map[string]int, len(st.Mirrors))
	for i, m := range st.Mirrors {
		idx[m.Name] = i
	}
	return func(name string) int {
		if i, ok := idx[name]; ok {
			return i
		}
		return -1
	}
}

// readTables adds each mirror's tables, in source table order.
func readTables(ctx context.Context, tx pgx.Tx, st *Status) error {
	rows, err := tx.Query(ctx, tablesSQL)
	if err != nil {
		return fmt.Errorf("read sluice_status.mirror_tables: %w", err)
	}
	defer rows.Close()
	find := mirrorIndex(st)
	for rows.Next() {
		var (
			mirror string
			t      Table
		)
		if err := rows.Scan(&mirror, &t.SourceTable, &t.DestinationTable, &t.Status, &t.Step, &t.StepStartedAt,
			&t.RowsCopied, &t.RowsEstimated, &t.PartitionsDone, &t.PartitionsTotal, &t.Inserts, &t.Updates,
			&t.Deletes, &t.ResyncStatus, &t.ResyncError, &t.Error); err != nil {
			return fmt.Errorf("read sluice_status.mirror_tables: %w", err)
		}
		if i := find(mirror); i >= 0 {
			st.Mirrors[i].Tables = append(st.Mirrors[i].Tables, t)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read sluice_status.mirror_tables: %w", err)
	}
	return nil
}

// readHistory adds each mirror's lag samples taken after since, oldest
// first.
func readHistory(ctx context.Context, tx pgx.Tx, st *Status, since time.Time) error {
	rows, err := tx.Query(ctx, historySQL, since)
	if err != nil {
		return fmt.Errorf("read sluice_status.mirror_lag_history: %w", err)
	}
	defer rows.Close()
	find := mirrorIndex(st)
	for rows.Next() {
		var (
			mirror string
			s      LagSample
		)
		if err := rows.Scan(&mirror, &s.At, &s.LagBytes, &s.LagSeconds, &s.RowsPerSecond); err != nil {
			return fmt.Errorf("read sluice_status.mirror_lag_history: %w", err)
		}
		s.At = s.At.UTC()
		if i := find(mirror); i >= 0 {
			st.Mirrors[i].LagHistory = append(st.Mirrors[i].LagHistory, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read sluice_status.mirror_lag_history: %w", err)
	}
	return nil
}
