package connectors

import "context"

// Applier applies batches of changes of a mirror to a destination, each
// batch in one destination transaction that also records the batch's end
// position. The Applier of a fenced Destination (Fencer) fails Begin or
// Commit with an error wrapping ErrFenced, applying nothing of the batch
// where the destination has transactions (and recording no position
// where it has not), once a later lease epoch claimed the destination.
// Not safe for concurrent use.
type Applier interface {
	// Begin opens a transaction and returns the position the destination
	// has recorded for the mirror ("": none).
	Begin(ctx context.Context) (recorded Position, err error)
	// Add applies changes (chunks of one batch, in order) in the open
	// transaction. Changes may be added in several calls before Commit.
	// Add must not keep the slices (nor modify the changes) after it
	// returns: the caller reuses them. Memory an applier keeps per
	// transaction must stay bounded whatever the transaction's size (apply
	// as it goes, or write out), so one source transaction of millions of
	// rows streams through.
	Add(ctx context.Context, changes ...[]Change) error
	// Commit records end (not "") as the mirror's position in the open
	// transaction and commits it, returning the change counts per source
	// table. When end is not beyond the position Begin returned, the batch
	// was applied before: the transaction is rolled back and the counts are
	// empty. On error the transaction is rolled back (but after a failed
	// COMMIT the destination may have committed).
	Commit(ctx context.Context, end Position) (map[TableName]TableCounts, error)
	// Rollback rolls the open transaction back, if any. Idempotent.
	Rollback(ctx context.Context) error
	// InTx reports whether a transaction is open.
	InTx() bool
	// SetTables replaces the set of tables (after a schema change or a
	// resync). Not called while a transaction is open.
	SetTables(tables []DestTable)
}

// TablePositionCommitter is an Applier that keeps per-table positions
// beside the mirror's (a table resync catching up with the mirror).
type TablePositionCommitter interface {
	// CommitTables is Commit that also, in the same transaction, records
	// the states in put and forgets those of the tables in drop. It commits
	// even when end is not beyond the recorded position (which then stays:
	// it never moves back).
	CommitTables(ctx context.Context, end Position, put []TableState, drop []TableName) (map[TableName]TableCounts, error)
}

// NullKeyReporter is an Applier that stores NULLs of some key columns as
// something else (a type's default), and reports how many it did.
type NullKeyReporter interface {
	// NullKeys returns, by source table and column, how many NULLs the last
	// successful Commit stored as a substitute; nil when none.
	NullKeys() map[TableName]map[string]int64
}
