package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Staging a transaction sent before its commit (connectors.LateVersions).
// Its changes come with Version 0: their version is the commit's, known
// only at the end, and ClickHouse cannot take rows back should the source
// roll the transaction back. So each table's windows are written, as they
// fill, to a stage table of the same columns and sorting key (recorded as
// Sluice's own, role RoleStage, made at the table's first window of the
// transaction), each window with the next window number as its version.
// At Commit, after SetVersion, each stage's rows go into the destination
// table in one statement, the last window's row of each key (the stage's
// FINAL) with the commit's version, and the stage is dropped; then the
// position is recorded, as for any transaction. Rollback drops the stages.
// A crash leaves a stage behind (the next stage of its table drops it) and
// the position before the transaction, which is streamed again.
//
// What a stage cannot take ends the early stream (an error wrapping
// connectors.ErrEarlyAbandoned; the flow streams transactions at their
// commit for a while): a change that lacks values to take from the
// destination's current row (a delete without REPLICA IDENTITY FULL, an
// unchanged TOAST value), a table whose sorting key has columns outside
// its primary key (its moved rows are read back), a truncate, and columns
// added to the table during the transaction.

var _ connectors.LateVersions = (*Applier)(nil)

// SetVersion implements connectors.LateVersions.
func (a *Applier) SetVersion(version uint64) { a.lateVersion = version }

// abandon returns an error for a change the stages cannot take.
func abandon(table connectors.TableName, why string) error {
	return fmt.Errorf("%s: %s: %w", table, why, connectors.ErrEarlyAbandoned)
}

// stageFor checks that a change may be added to the transaction as it is:
// versioned and unversioned changes do not mix, and a staged transaction
// takes no truncate and no table whose columns grew.
func (a *Applier) stageFor(t *chTable, c *connectors.Change) error {
	if c.Version == 0 && !a.staging {
		if a.txChanges > 0 {
			return fmt.Errorf("change (%c of %s) has no version, and earlier changes of the transaction had one", c.Kind, c.Table)
		}
		a.staging = true
	}
	if c.Version != 0 && a.staging {
		return fmt.Errorf("change (%c of %s) has a version in a transaction sent before its commit", c.Kind, c.Table)
	}
	a.txChanges++
	switch {
	case !a.staging:
		return nil
	case c.Kind == connectors.Truncate:
		return abandon(c.Table, "a truncate in a transaction sent before its commit")
	case t.ncols != len(t.dt.Schema.Columns):
		return abandon(c.Table, "columns added during a transaction sent before its commit")
	}
	return nil
}

// stageWindow writes t's window to its stage.
func (a *Applier) stageWindow(ctx context.Context, t *chTable) error {
	if t.l.moves {
		return abandon(t.dt.Source, "its sorting key has columns outside the primary key")
	}
	for i := range t.win.entries {
		if hasUnchanged(t.win.entries[i].vals) {
			return abandon(t.dt.Source, "a change lacks values to take from the destination's current row")
		}
	}
	st, err := a.stageOf(ctx, t)
	if err != nil {
		return err
	}
	st.windows++
	for i := range t.win.entries {
		t.win.entries[i].version = st.windows
	}
	return t.sendEntries(ctx, a.conn, st.own.Name, t.win.entries, nil, syncedNow())
}

// stage is a table's stage in the open transaction.
type stage struct {
	t       *chTable
	own     OwnedTable
	windows uint64 // written to it
}

// stageOf returns t's stage, making it at the transaction's first window
// of t (dropping one an earlier run left).
func (a *Applier) stageOf(ctx context.Context, t *chTable) (*stage, error) {
	for _, st := range a.stages {
		if st.t == t {
			return st, nil
		}
	}
	if err := a.checkEpoch(ctx); err != nil {
		return nil, err // a superseded run touches no stage
	}
	var reserved []connectors.TableName // the mirror's tables, even one missing
	for _, m := range a.tables {
		reserved = append(reserved, m.dt.Dest)
	}
	o, err := createOwned(ctx, a.conn, a.db, a.mirror, t.dt.Dest, RoleStage, reserved,
		func(name connectors.TableName, marker string) (string, error) {
			opts := t.l.opts
			opts.Marker = marker
			return CreateTableDDL(name, t.dt.Schema, a.info, opts)
		})
	if err != nil {
		return nil, err
	}
	st := &stage{t: t, own: o}
	a.stages = append(a.stages, st)
	return st, nil
}

// commitStages moves each stage's rows into its table with the version
// SetVersion gave, then drops the stages.
func (a *Applier) commitStages(ctx context.Context) error {
	if a.lateVersion == 0 {
		return errors.New("commit: a transaction sent before its commit has no version (SetVersion)")
	}
	for _, st := range a.stages {
		l := st.t.l
		cols := make([]string, 0, len(l.schema.Columns)+3)
		for _, c := range l.schema.Columns {
			cols = append(cols, quoteIdent(c.Name))
		}
		cols = append(cols, fmt.Sprintf("toUInt64(%d)", a.lateVersion), quoteIdent(l.opts.DeletedColumn),
			quoteIdent(l.opts.SyncedAtColumn))
		q := fmt.Sprintf("%s SELECT %s FROM %s FINAL", l.insertSQL(), strings.Join(cols, ", "), qualified(st.own.Name))
		if err := a.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("insert into %s from its stage %s: %w", l.dest, st.own.Name, err)
		}
	}
	return a.dropStages(ctx, &a.stages)
}

// dropStages drops the stages in *list and forgets them.
func (a *Applier) dropStages(ctx context.Context, list *[]*stage) error {
	for len(*list) > 0 {
		st := (*list)[0]
		if err := DropOwned(ctx, a.conn, a.db, a.mirror, st.t.dt.Dest, RoleStage); err != nil {
			return err
		}
		*list = (*list)[1:]
	}
	return nil
}

// dropLeftover drops the stages of transactions that ended in an error.
func (a *Applier) dropLeftover(ctx context.Context) error { return a.dropStages(ctx, &a.leftover) }

// dropStagesLeft drops the stages the mirror's earlier runs left (a crash
// in a transaction sent before its commit).
func dropStagesLeft(ctx context.Context, conn driver.Conn, db, mirror string) error {
	return dropRole(ctx, conn, db, mirror, RoleStage)
}
