package connectors

import "time"

// ValueKind tells what a Value holds.
type ValueKind byte

// Kinds of column values in a change, as pgoutput marks them.
const (
	// Null is SQL NULL.
	Null ValueKind = 'n'
	// Unchanged is a TOASTed value the update did not touch; the source did
	// not send it, so the destination must keep the value it has.
	Unchanged ValueKind = 'u'
	// Binary is the type's binary send format (what binary COPY carries).
	Binary ValueKind = 'b'
)

// Value is one column value of a changed row.
type Value struct {
	Kind ValueKind
	Data []byte // for Binary; owned by the Value
}

// ChangeKind is the kind of a row change.
type ChangeKind byte

// Kinds of change.
const (
	Insert   ChangeKind = 'I'
	Update   ChangeKind = 'U'
	Delete   ChangeKind = 'D'
	Truncate ChangeKind = 'T'
)

// Change is one row change of a source table, in the column order of the
// table's TableSchema (excluded columns already removed).
type Change struct {
	Kind  ChangeKind
	Table TableName
	// New is the new row for Insert and Update.
	New []Value
	// Old identifies the row before an Update or Delete: the primary key
	// columns are set (others may be Null); nil for an Update that kept its
	// key, where New's key columns identify the row.
	Old []Value
	// Version is the row version of the change: a number that increases
	// in commit order, the same for every change of a transaction and for
	// every replay of it (for a Postgres source, where the commit record of
	// the change's transaction starts: EventBegin's Version). Destinations
	// without transactions keep it in the row.
	Version uint64
}

// Batch is a run of whole source transactions applied to a destination
// in one transaction.
type Batch struct {
	Changes []Change
	// End is the end of the last transaction in the batch: the position
	// recorded on the destination with the batch, and acknowledged to the
	// source once the destination has committed.
	End Position
	// CommitTime is the source commit time of the last transaction.
	CommitTime time.Time
}

// Rows counts the row changes in the batch (truncates excluded).
func (b *Batch) Rows() int {
	n := 0
	for _, c := range b.Changes {
		if c.Kind != Truncate {
			n++
		}
	}
	return n
}
