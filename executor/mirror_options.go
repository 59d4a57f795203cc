package executor

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlext"
)

// optionKind is the type of a mirror option's value.
type optionKind int

const (
	optBool optionKind = iota
	optInt
	optString
	optIdent    // a Postgres identifier (slot, publication, column names)
	optStrategy // 'truncate' or 'swap'
	optNotApplicable
)

type optionSpec struct {
	kind optionKind
	def  string
	min  int64 // for optInt
	doc  string
}

// mirrorOptions are the options CREATE MIRROR accepts, with defaults.
// PeerDB's staging and scripting options are accepted for compatibility
// and reported as not applicable.
var mirrorOptions = map[string]optionSpec{
	"do_initial_copy":       {kind: optBool, def: "true", doc: "copy existing rows before streaming changes"},
	"initial_copy_only":     {kind: optBool, def: "false", doc: "copy existing rows, then stop (no CDC)"},
	"publication_name":      {kind: optIdent, doc: "source publication (default sluice_<mirror>)"},
	"replication_slot_name": {kind: optIdent, doc: "source replication slot (default sluice_<mirror>)"},
	"snapshot_num_rows_per_partition": {kind: optInt, def: "0", min: 0,
		doc: "rows per initial-load partition (0: automatic: a table of up to 1 GB whole, a larger one in partitions of 250000 rows)"},
	"snapshot_max_parallel_workers":   {kind: optInt, def: "4", min: 1, doc: "most partitions copied at once (a load adds them while they pay)"},
	"snapshot_num_tables_in_parallel": {kind: optInt, def: "1", min: 1, doc: "tables copied at once"},
	"snapshot_num_partitions_override": {kind: optInt, def: "0", min: 0,
		doc: "partitions of each table's initial load, overriding snapshot_num_rows_per_partition (0: no override)"},
	// resync is an action, not a setting: it is never stored (see
	// createMirror and recreateMirror).
	"resync":                 {kind: optBool, doc: "re-create an existing mirror of the same definition as a full resync (RESYNC MIRROR)"},
	"max_batch_size":         {kind: optInt, def: "250000", min: 1, doc: "most row changes per CDC batch"},
	"sync_interval":          {kind: optInt, def: "1", min: 0, doc: "seconds a change may wait in a batch"},
	"soft_delete_col_name":   {kind: optIdent, doc: "boolean column set true on delete instead of deleting"},
	"synced_at_col_name":     {kind: optIdent, doc: "timestamptz column set when a row is written"},
	"replicate_indexes":      {kind: optBool, def: "false", doc: "recreate the source's indexes on the destination"},
	"replicate_foreign_keys": {kind: optBool, def: "false", doc: "recreate foreign keys between mirrored tables"},
	"resync_strategy":        {kind: optStrategy, def: "truncate", doc: "default strategy of RESYNC TABLE"},
	"disable_peerdb_columns": {kind: optNotApplicable, doc: "PeerDB columns are never added to Postgres destinations"},
	"snapshot_staging_path":  {kind: optNotApplicable, doc: "Sluice streams without staging files"},
	"cdc_staging_path":       {kind: optNotApplicable, doc: "Sluice streams without staging files"},
	"script":                 {kind: optNotApplicable, doc: "row transformation scripts are not supported"},
	"system":                 {kind: optNotApplicable, doc: "PeerDB's execution system choice"},
}

// validateMirrorOptions checks every option and returns the stored form
// (all known keys, defaults filled), notices for accepted options that do
// not apply, or an error naming the offending option.
func validateMirrorOptions(mirror string, opts sqlext.Options) (map[string]string, []string, error) {
	out := make(map[string]string)
	var notices []string
	for _, o := range opts {
		v, notice, err := checkMirrorOption(o)
		if err != nil {
			return nil, nil, err
		}
		if notice != "" {
			notices = append(notices, notice)
			continue
		}
		out[o.Key] = v
	}
	for k, spec := range mirrorOptions {
		if _, ok := out[k]; !ok && spec.def != "" {
			out[k] = spec.def
		}
	}
	def := "sluice_" + strings.ToLower(mirror)
	if len(def) > 63 {
		def = def[:63]
	}
	if out["publication_name"] == "" {
		out["publication_name"] = def
	}
	if out["replication_slot_name"] == "" {
		out["replication_slot_name"] = def
	}
	if err := slotNameValid(out["replication_slot_name"]); err != nil {
		return nil, nil, err
	}
	if out["soft_delete_col_name"] != "" && out["soft_delete_col_name"] == out["synced_at_col_name"] {
		return nil, nil, &connectors.OptionError{Key: "synced_at_col_name", Reason: "must differ from soft_delete_col_name"}
	}
	return out, notices, nil
}

// checkMirrorOption checks one option's key and value, and returns the
// value as stored (booleans and integers in one spelling), or, for an
// option accepted but not applicable, the notice that says so (and no
// value to store). CREATE MIRROR and ALTER MIRROR check values with it.
func checkMirrorOption(o sqlext.Option) (value, notice string, err error) {
	spec, err := mirrorOption(o.Key)
	if err != nil {
		return "", "", err
	}
	v := o.Value.Text
	switch spec.kind {
	case optBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", "", &connectors.OptionError{Key: o.Key, Reason: fmt.Sprintf("%q is not a boolean", v)}
		}
		v = strconv.FormatBool(b)
	case optInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < spec.min {
			return "", "", &connectors.OptionError{Key: o.Key,
				Reason: fmt.Sprintf("%q is not an integer of at least %d", v, spec.min)}
		}
		v = strconv.FormatInt(n, 10)
	case optIdent:
		if v == "" || len(v) > 63 {
			return "", "", &connectors.OptionError{Key: o.Key, Reason: "must be a name of 1 to 63 characters"}
		}
	case optStrategy:
		v = strings.ToLower(v)
		if v != "truncate" && v != "swap" {
			return "", "", &connectors.OptionError{Key: o.Key, Reason: fmt.Sprintf("%q is not truncate or swap", v)}
		}
	case optNotApplicable:
		return "", notApplicable(o.Key, spec), nil
	}
	return v, "", nil
}

// notApplicable is the notice for an option accepted for PeerDB
// compatibility that does nothing.
func notApplicable(key string, spec optionSpec) string {
	return fmt.Sprintf("option %q is accepted for PeerDB compatibility and has no effect: %s", key, spec.doc)
}

// mirrorOption returns the spec of the mirror option key, or the error
// for an unknown key, which lists the accepted ones.
func mirrorOption(key string) (optionSpec, error) {
	spec, ok := mirrorOptions[key]
	if !ok {
		return optionSpec{}, &connectors.OptionError{Key: key, Unknown: true,
			Reason: "a mirror accepts " + strings.Join(optionNames(), ", ")}
	}
	return spec, nil
}

// slotNameValid applies Postgres' rule for slot names.
func slotNameValid(name string) error {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return &connectors.OptionError{Key: "replication_slot_name",
				Reason: fmt.Sprintf("%q may contain only lower-case letters, digits and underscores", name)}
		}
	}
	return nil
}

func optionNames() []string {
	names := make([]string, 0, len(mirrorOptions))
	for k := range mirrorOptions {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
