package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// ALTER MIRROR m ADD TABLE / DROP TABLE are in mirror_alter_tables.go.
//
// ALTER MIRROR m SET (...) / RESET (...) changes the options of an existing
// mirror. The new values are stored in the catalog, with an "options"
// event, and the mirror's running flow is woken: it follows max_batch_size
// and sync_interval at once, and reads the other options at its next
// attempt, which is when later loads start (see
// executor/replication/live_options.go). Nothing is restarted.

// alterableOptions are the options ALTER MIRROR may change, with when a
// change takes effect (for the docs and the test that every option is
// classified).
var alterableOptions = map[string]string{
	"max_batch_size":                   "at once, for the batches after the change",
	"sync_interval":                    "at once, for the batches after the change",
	"snapshot_num_rows_per_partition":  "for later loads (RESYNC TABLE, RESYNC MIRROR, tables not yet planned)",
	"snapshot_max_parallel_workers":    "for later loads",
	"snapshot_num_tables_in_parallel":  "for later loads",
	"snapshot_num_partitions_override": "for later loads (RESYNC TABLE, RESYNC MIRROR, tables not yet planned)",
	"resync_strategy":                  "for later RESYNC TABLE statements without a strategy",
}

// fixedOption says why an option cannot change on an existing mirror, and
// what to do instead.
type fixedOption struct{ why, hint string }

// recreate is the hint for options only a new mirror can have.
const recreate = "Create a new mirror with the new value (DROP MIRROR, then CREATE MIRROR)."

// fixedOptions are the options ALTER MIRROR refuses: each decides what
// exists on the source or the destination, or how the mirror started.
var fixedOptions = map[string]fixedOption{
	"do_initial_copy":        {"it decided whether the mirror's tables were loaded when it was created", recreate},
	"initial_copy_only":      {"it decided whether the mirror streams changes after its initial load", recreate},
	"publication_name":       {"it names the publication the mirror reads on its source", recreate},
	"replication_slot_name":  {"it names the replication slot the mirror holds on its source", recreate},
	"soft_delete_col_name":   {"it names a column of the mirror's destination tables", recreate},
	"synced_at_col_name":     {"it names a column of the mirror's destination tables", recreate},
	"replicate_indexes":      {"it decided which indexes the mirror's destination tables have", recreate},
	"replicate_foreign_keys": {"it decided which foreign keys the mirror's destination tables have", recreate},
	"resync":                 {"it is an action of CREATE MIRROR, not a setting", "Use RESYNC MIRROR to resync the mirror."},
}

// alterMirror runs ALTER MIRROR ... SET / RESET. Every option is checked
// before anything is stored: one refused option, unknown key or bad value
// leaves the mirror unchanged.
func (s *session) alterMirror(ctx context.Context, st *sqlext.AlterMirror, w server.ResultWriter) error {
	const tag = "ALTER MIRROR"
	m, err := s.getMirror(ctx, st.Name, st.NamePos)
	if err != nil {
		if st.IfExists && isCode(err, pgerrcode.UndefinedObject) {
			_ = w.Notice(sqlerr.Notice("mirror %q does not exist, skipping", st.Name))
			return w.Complete(tag)
		}
		return err
	}
	if st.Action == sqlext.AlterAddTable || st.Action == sqlext.AlterDropTable {
		return s.alterMirrorTables(ctx, st, m, w) // mirror_alter_tables.go
	}
	// opts are the statement's options, RESET's names with empty values,
	// so that errors point at them.
	opts := st.Options
	if st.Action == sqlext.AlterReset {
		opts = make(sqlext.Options, len(st.Reset))
		for i, n := range st.Reset {
			opts[i] = sqlext.Option{Key: n.Key, Pos: n.Pos}
		}
	}
	changes, notices, err := alterOptions(st.Action, opts)
	if err != nil {
		return optionError(err, opts, st.NamePos)
	}
	var changed string
	err = s.ex.cfg.Store.UpdateMirrorOptions(ctx, m.Name, func(old map[string]string) (map[string]string, string, error) {
		next := make(map[string]string, len(old)+len(changes))
		for k, v := range old {
			next[k] = v
		}
		var diffs []string
		for _, c := range changes {
			was, ok := old[c.key]
			if !ok {
				was = mirrorOptions[c.key].def // stored before the option existed
			}
			next[c.key] = c.value
			if was != c.value {
				diffs = append(diffs, fmt.Sprintf("%s %s -> %s", c.key, was, c.value))
			}
		}
		if len(diffs) == 0 {
			return nil, "", nil
		}
		changed = strings.Join(diffs, ", ")
		return next, "options " + strings.ToLower(st.Action.String()) + ": " + changed, nil
	})
	if errors.Is(err, catalog.ErrMirrorNotFound) { // dropped meanwhile
		return sqlerr.New(pgerrcode.UndefinedObject, "mirror %q does not exist", st.Name).WithPosition(int(st.NamePos))
	}
	if err != nil {
		return err
	}
	for _, n := range notices {
		_ = w.Notice(sqlerr.Notice("%s", n))
	}
	if changed == "" {
		_ = w.Notice(sqlerr.Notice("mirror %q already has these option values: nothing changed", m.Name))
		return w.Complete(tag)
	}
	s.ex.engine.Wake(m.Name) // see executor/replication/live_options.go
	s.ex.cfg.Logger.InfoContext(ctx, "mirror options changed", "mirror", m.Name, "changes", changed)
	return w.Complete(tag)
}

// optionChange is one option's new value.
type optionChange struct{ key, value string }

// alterOptions checks the options of an ALTER MIRROR and returns their new
// values in statement order (RESET: the defaults), and notices for options
// accepted for PeerDB compatibility that do nothing. Values are checked as
// CREATE MIRROR checks them (checkMirrorOption). Errors are
// *connectors.OptionError for unknown keys and bad values, or a SQL error
// for an option that cannot change (55P02).
func alterOptions(action sqlext.AlterAction, opts sqlext.Options) ([]optionChange, []string, error) {
	var changes []optionChange
	var notices []string
	for _, o := range opts {
		spec, err := mirrorOption(o.Key)
		if err != nil {
			return nil, nil, err
		}
		if spec.kind == optNotApplicable {
			notices = append(notices, notApplicable(o.Key, spec))
			continue
		}
		if _, ok := alterableOptions[o.Key]; !ok {
			f, ok := fixedOptions[o.Key]
			if !ok { // a new option nobody classified: refused until someone does
				f = fixedOption{why: "it has not been made changeable", hint: recreate}
			}
			return nil, nil, sqlerr.New(pgerrcode.CantChangeRuntimeParam,
				"option %q cannot be changed on an existing mirror: %s", o.Key, f.why).
				WithPosition(int(o.Pos)).WithHint("%s", f.hint)
		}
		value := spec.def
		if action == sqlext.AlterSet {
			if value, _, err = checkMirrorOption(o); err != nil {
				return nil, nil, err
			}
		}
		changes = append(changes, optionChange{key: o.Key, value: value})
	}
	return changes, notices, nil
}
