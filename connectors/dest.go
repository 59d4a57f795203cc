package connectors

// DestTable is one mirrored table as a destination's applier sees it.
type DestTable struct {
	// Source is the source table: the key of Change.Table.
	Source TableName
	// Dest is the destination table. It must exist with every column of
	// Schema (same names) and a primary key or unique index on
	// Schema.PrimaryKey.
	Dest TableName
	// Schema lists the replicated columns (Change values come in its column
	// order) and the primary key, which must not be empty. The applier
	// reads it when a transaction first touches the table; the caller may
	// append columns to it between transactions (the destination must have
	// them by then).
	Schema *TableSchema
	// SoftDeleteColumn, if set, names a boolean destination column: a
	// delete sets it true and keeps the row and its values, an insert or
	// update sets it false, and a truncate sets it true on every row.
	SoftDeleteColumn string
	// SyncedAtColumn, if set, names a timestamp destination column set to
	// the time of applying by every applied insert, update and soft delete.
	SyncedAtColumn string
	// OrderBy is the sorting key a mapping set (order_by), for
	// destinations with SortingKeys; nil means the primary key.
	OrderBy []string
}

// TableCounts counts the row changes of a batch for one source table, by
// kind as received (before any folding).
type TableCounts struct{ Inserts, Updates, Deletes int64 }
