package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// Execer runs a statement: a connection or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// TableStates returns the table resyncs under way for mirror, by source
// table. EnsureMetadata must have run.
func TableStates(ctx context.Context, q Querier, meta, mirror string) (map[connectors.TableName]connectors.TableState, error) {
	rows, err := q.Query(ctx, "SELECT source_table, stage, strategy, position, lsn, saved FROM "+metaSchema(meta)+
		".table_state WHERE mirror = $1", mirror)
	if err != nil {
		return nil, fmt.Errorf("read table resync states of mirror %s: %w", mirror, err)
	}
	out := make(map[connectors.TableName]connectors.TableState)
	var name string
	var st connectors.TableState
	var pos *string
	var lsn int64
	var saved []byte
	_, err = pgx.ForEachRow(rows, []any{&name, &st.Stage, &st.Strategy, &pos, &lsn, &saved}, func() error {
		t, err := connectors.ParseTableName(name)
		if err != nil {
			return err
		}
		st.Table, st.Position, st.Saved = t, storedPosition(pos, lsn), nil
		if saved != nil {
			st.Saved = append(json.RawMessage(nil), saved...)
		}
		out[t] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read table resync states of mirror %s: %w", mirror, err)
	}
	return out, nil
}

// PutTableState records st for mirror (an upsert). Call it in the
// transaction that did what the stage says is done.
func PutTableState(ctx context.Context, db Execer, meta, mirror string, st connectors.TableState) error {
	var saved any
	if st.Saved != nil {
		saved = []byte(st.Saved)
	}
	_, err := db.Exec(ctx, "INSERT INTO "+metaSchema(meta)+`.table_state AS s (mirror, source_table, stage, strategy, lsn, position, saved)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (mirror, source_table) DO UPDATE SET stage = excluded.stage, strategy = excluded.strategy,
	lsn = excluded.lsn, position = excluded.position, saved = excluded.saved, updated_at = now()`,
		mirror, st.Table.String(), st.Stage, st.Strategy, lsnColumn(st.Position), string(st.Position), saved)
	if err != nil {
		return fmt.Errorf("record resync state of %s in mirror %s: %w", st.Table, mirror, err)
	}
	return nil
}

// DeleteTableState forgets the resync of table (it is over). Idempotent.
func DeleteTableState(ctx context.Context, db Execer, meta, mirror string, table connectors.TableName) error {
	_, err := db.Exec(ctx, "DELETE FROM "+metaSchema(meta)+".table_state WHERE mirror = $1 AND source_table = ANY($2)",
		mirror, table.Keys())
	if err != nil {
		return fmt.Errorf("clear resync state of %s in mirror %s: %w", table, mirror, err)
	}
	return nil
}
