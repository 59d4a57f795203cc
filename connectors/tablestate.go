package connectors

import "encoding/json"

// Stages of a table resync, as recorded on the destination (TableState).
// The destination is where a resync's progress must live: each stage is
// entered in the transaction that finished the previous one.
const (
	// StageCopy: the table is being copied under a snapshot of its own
	// (into itself, emptied, or into its shadow table).
	StageCopy = "copy"
	// StageCatchup: the copy is complete as of TableState.Position; the table's
	// changes committed after it are being applied (to the shadow table
	// with the swap strategy) while the stream catches up with the mirror.
	StageCatchup = "catchup"
	// StageSwap: caught up; the shadow table is to be swapped in. Changes
	// keep going to the shadow table until then.
	StageSwap = "swap"
	// StageHeld: the table's changes are not applied (PAUSE MIRROR m
	// TABLE t, or its changes failed to apply: a TableError); its changes
	// committed up to TableState.Position are applied, those after it wait
	// on the source. Strategy says why (HeldPaused or HeldFailed).
	StageHeld = "held"
)

// Why a table is held (TableState.Strategy in StageHeld), and the strategy
// of a held table catching up after RESUME (StageCatchup, straight into
// its live table).
const (
	HeldPaused = "paused"
	HeldFailed = "failed"
	Resumed    = "resume"
)

// TableState is the destination's record of a table resync under way.
type TableState struct {
	Table    TableName // the source table
	Stage    string    // StageCopy, StageCatchup or StageSwap
	Strategy string    // swap or truncate
	// Position, in StageCatchup, is the table's own position: its changes
	// committed up to it are applied; those after it are not (yet).
	Position Position
	// Saved is what the truncate strategy removed from the destination
	// before emptying the table (indexes, foreign keys), to restore it
	// after the copy, also after a crash. Owned by the caller.
	Saved json.RawMessage
}
