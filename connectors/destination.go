package connectors

import (
	"context"
	"errors"
)

// The destination side of the seam. A flow opens a Destination for one
// mirror from the destination peer (DestinationPeer); through it, it makes
// tables, loads partitions (Loader) and applies changes (Applier), and
// reads and records what the destination has applied. What not every
// destination can do is an ability below; a flow asks for one with a type
// assertion and, where it lacks, tells the user so naming the peer type.

// Errors a Destination returns, wrapped, that flows act on.
var (
	// ErrNoFreeName: no free name was found for a table Sluice makes
	// (a shadow table); nothing was made.
	ErrNoFreeName = errors.New("no free name for a temporary table")
	// ErrNotSwappable: the live table cannot be replaced by a shadow
	// table (something depends on it in a way a swap would break);
	// nothing was changed.
	ErrNotSwappable = errors.New("table cannot be swapped")
	// ErrShadowLost: the shadow table Sluice recorded is gone or is no
	// longer the one it made; nothing was swapped.
	ErrShadowLost = errors.New("shadow table not found")
	// ErrTableChanged: a destination table no longer fits its source
	// table in a way Sluice does not follow (a column's type changed);
	// the user must act (a resync rebuilds it).
	ErrTableChanged = errors.New("destination table no longer fits the source table")
)

// DestinationPeer is the ability of a Peer that can be a mirror's
// destination.
type DestinationPeer interface {
	// OpenDestination connects to the peer as application appName, for
	// mirror (whose metadata the Destination reads and writes). The caller
	// closes the Destination.
	OpenDestination(ctx context.Context, appName, mirror string) (Destination, error)
}

// Destination is a connection to a mirror's destination. Not safe for
// concurrent use, except OpenLoader: a flow that loads in parallel opens a
// Loader per worker, from its workers.
//
// A destination keeps, in its own metadata beside the data, what must
// commit with the data: the mirror's applied position and the partitions
// loaded. Every method that writes is idempotent.
type Destination interface {
	// DefaultSchema is the schema (or database) of destination tables
	// named without one.
	DefaultSchema() string
	// Applied makes the metadata if it is missing and returns the position
	// the mirror's last applied batch recorded ("" when none).
	Applied(ctx context.Context) (Position, error)
	// TableExists reports whether table exists.
	TableExists(ctx context.Context, table TableName) (bool, error)
	// CreateTable creates d.Dest for d's columns and key unless it exists.
	CreateTable(ctx context.Context, d DestTable) error
	// Loaded returns the partitions of source table's load recorded done
	// (partition index to rows).
	Loaded(ctx context.Context, table TableName) (map[int]int64, error)
	// ForgetLoad forgets the partitions recorded done for table; with the
	// zero name, everything recorded for the mirror (its partitions, its
	// applied position): a full resync starts over.
	ForgetLoad(ctx context.Context, table TableName) error
	// OpenLoader opens a loader on a connection of its own. Safe for
	// concurrent use (with itself, not with the other methods).
	OpenLoader(ctx context.Context) (Loader, error)
	// NewApplier returns an applier of the mirror's changes to tables, on
	// this Destination's connection: the caller uses the Destination's
	// other methods only while the applier has no transaction open.
	NewApplier(ctx context.Context, tables []DestTable) (Applier, error)
	// Teardown prepares to forget the mirror's metadata, drop the tables
	// Sluice made and recorded as its own for it (shadow tables), and drop
	// tables (the mirror's destination tables, when the user asks). Where
	// the destination has transactions it does it all in one, which it
	// holds open, with its locks, until the caller commits or aborts the
	// Pending (DROP MIRROR drops the source's stream in between);
	// elsewhere it checks what it can and Commit does the work, each part
	// idempotent. On error nothing changed and nothing is held.
	Teardown(ctx context.Context, drop []TableName) (Pending, error)
	// Dependents describes what depends on tables and would stop a DROP
	// (views, foreign keys of other tables), one line each.
	Dependents(ctx context.Context, tables []TableName) ([]string, error)
	// Close closes the connection.
	Close(ctx context.Context) error
}

// Pending is work a destination prepared and holds until the caller
// commits or aborts it. Exactly one of Commit and Abort is called, once.
type Pending struct {
	// Commit makes the work so. After an error the work may be partly
	// done; running the whole again finishes it.
	Commit func(ctx context.Context) error
	// Abort undoes the prepared work and releases what it holds.
	Abort func()
}

// LoadJob is one partition to load.
type LoadJob struct {
	// Table is where the rows go: Table.Dest (a live or a shadow table)
	// for source table Table.Source, whose load the partition belongs to.
	Table DestTable
	// Index numbers the partition in its table's plan; Partition is it.
	Index     int
	Partition Partition
	// Upsert: rows of the partition may be there already, from an attempt
	// under another snapshot (a load resumed after a restart).
	Upsert bool
	// Version is the snapshot's version (Snapshot.Version), for
	// destinations that keep one per row.
	Version uint64
	// Progress, when not nil, is called with the rows read so far (see
	// PartitionReader.Read).
	Progress func(rows int64)
	// Epoch is the lease epoch the load was planned under (0: none, no
	// check). The Loader of a destination that is a Fencer refuses the
	// partition, with an error wrapping ErrFenced and nothing recorded
	// done, when the destination records a later epoch for the mirror:
	// a node that took the mirror over claimed it, and the load is stale.
	Epoch int64
}

// Loader loads partitions on a connection of its own. Not safe for
// concurrent use.
type Loader interface {
	// Load reads job's partition with r and writes its rows into
	// job.Table.Dest, and records the partition done (see
	// Destination.Loaded): in one transaction where the destination has
	// them; otherwise after the rows, and a partition cut off is loaded
	// again, which must converge (same rows, same version). It returns the
	// rows loaded. After an error the reader is only closed.
	Load(ctx context.Context, r PartitionReader, job LoadJob) (int64, error)
	// Close closes the connection.
	Close(ctx context.Context) error
}

// LoadFinisher is the ability of a destination that builds a table's key
// and indexes around a load rather than during it.
type LoadFinisher interface {
	// PrepareUpsert makes what an upserting load (LoadJob.Upsert) of d
	// needs: its primary key.
	PrepareUpsert(ctx context.Context, d DestTable) error
	// FinishLoad builds what the load of d left out: its primary key and,
	// when d.Dest is a shadow table of live, live's indexes (named so that
	// a swap renames them back). Statistics of a shadow are left for after
	// its swap (SwapReport.Analyze).
	FinishLoad(ctx context.Context, d DestTable, live TableName) error
}

// IndexCreator is the ability of a destination to run a source's index and
// foreign-key DDL (see IndexDefiner).
type IndexCreator interface {
	// CreateIndexes creates on dest the indexes stmts define, skipping
	// those that exist. Idempotent.
	CreateIndexes(ctx context.Context, dest TableName, stmts []string) error
	// CreateForeignKeys adds to dest the foreign keys stmts define,
	// skipping those that exist. Idempotent.
	CreateForeignKeys(ctx context.Context, dest TableName, stmts []string) error
}

// TablePlanner is the ability of a destination to say, before anything is
// made (CREATE MIRROR), what it would make of a table.
type TablePlanner interface {
	// PlanTable refuses, naming the table and the column, a table
	// CreateTable would fail to make of d (the error's text is the
	// user's message), and returns the notices for the user about what
	// differs from the source (generated columns left out, nullable
	// sorting-key columns). No I/O.
	PlanTable(d DestTable) (notices []string, err error)
}

// SortingKeys is the ability of a destination whose tables have a sorting
// key other than the primary key, which a mapping may set (order_by).
type SortingKeys interface {
	// SortsBy returns d's sorting key: d.OrderBy, or the primary key.
	SortsBy(d DestTable) []string
}

// SchemaFollower is the ability of a destination to follow columns the
// source adds to a mirrored table.
type SchemaFollower interface {
	// AddColumns adds to d.Dest those of cols it lacks, and fills them in
	// for the rows it has from src (ColumnReader), as the source has
	// them. It returns what it did, for the mirror's events, one line
	// each. Idempotent.
	AddColumns(ctx context.Context, src Source, d DestTable, cols []Column) (events []string, err error)
}

// TableChecker is the ability of a destination to check, when a mirror's
// stream starts, that its tables still fit the source's (a type the source
// changed), and to bring what an older Sluice made up to date.
type TableChecker interface {
	// CheckTables fails with an error wrapping ErrTableChanged, naming the
	// table and column and what to do, when a table of tables no longer
	// fits; other errors are transient.
	CheckTables(ctx context.Context, tables []DestTable) error
}

// ShadowSwapper is the ability of a destination to load a table beside the
// live one and swap it in (RESYNC MIRROR, and RESYNC TABLE with
// strategy 'swap'): readers never see the table missing or empty.
type ShadowSwapper interface {
	// CreateShadow makes an empty shadow table for live table d.Dest from
	// d, under a free name that none of reserved takes, and records it as
	// Sluice's own; a shadow an earlier attempt recorded for it is
	// dropped, nothing else. It returns the shadow's name; ErrNoFreeName
	// when there is none.
	CreateShadow(ctx context.Context, d DestTable, reserved []TableName) (TableName, error)
	// Shadows returns the shadow tables recorded for the mirror, by live
	// table.
	Shadows(ctx context.Context) (map[TableName]TableName, error)
	// CheckSwappable returns an error wrapping ErrNotSwappable when live
	// cannot be swapped; nil when it can or does not exist.
	CheckSwappable(ctx context.Context, live TableName) error
	// SwapIn puts each swap's shadow table in place of its live table, all
	// or none, after carrying into the shadow what it must keep of the
	// live table (rows soft-deleted there; with Swap.NewerThan, rows
	// changed after the shadow's snapshot), and forgets the shadows. A
	// missing live table is simply replaced. When no swap's shadow is
	// recorded, the swap was done before (a crash after it): SwapIn only
	// finishes what it left, if anything. When some are recorded and
	// others not, it returns an error wrapping ErrShadowLost and swaps
	// nothing, unless the destination's own records show that swap under
	// way, which it then finishes.
	SwapIn(ctx context.Context, swaps []Swap) (SwapReport, error)
}

// RetiredDropper is the ability of a ShadowSwapper that sets the tables a
// swap replaced aside rather than drop them in the swap (a large table's
// files take a while to remove): the flow drops them once the resync is
// done, and again when the mirror's stream starts (a crash in between).
type RetiredDropper interface {
	// DropRetired drops the tables swaps of the mirror set aside.
	// Idempotent.
	DropRetired(ctx context.Context) error
}

// Swap is one table of ShadowSwapper.SwapIn.
type Swap struct {
	// Table is the live table (Table.Dest) and its source.
	Table DestTable
	// NewerThan, when not 0, is the version of the shadow's snapshot: the
	// live table's rows of a later version are carried into the shadow
	// (VersionedRows destinations, whose table resync does not catch up).
	NewerThan uint64
	// EndResync also forgets the table's resync state (TablePositions) in
	// the swap's transaction.
	EndResync bool
}

// SwapReport is what a swap did, for the mirror's events.
type SwapReport struct {
	// Notes say what the swap changed besides the tables (foreign keys
	// re-added, views recreated).
	Notes []string
	// Validate lists checks the swap deferred (foreign keys re-added NOT
	// VALID), for ConstraintValidator.
	Validate []string
	// Analyze lists the live tables the swap put in whose planner
	// statistics are still to be collected, for Analyzer: a swap does not
	// wait for them, and readers get the new rows that much sooner.
	Analyze []TableName
}

// Analyzer is the ability of a destination to collect, outside a swap,
// the planner statistics of tables it swapped in (SwapReport.Analyze),
// without a lock that stops readers or writers.
type Analyzer interface {
	// Analyze collects the statistics of each table; a failing one is
	// passed to failed (whose error, if any, stops the rest) and the
	// others go on.
	Analyze(ctx context.Context, tables []TableName, failed func(table TableName, err error) error) error
}

// ConstraintValidator is the ability of a destination to run, outside the
// swap, the checks it deferred (SwapReport.Validate) without a lock that
// stops readers or writers.
type ConstraintValidator interface {
	// ValidateConstraints runs each check; a failing one is passed to
	// failed (whose error, if any, stops the rest) and the others go on.
	ValidateConstraints(ctx context.Context, checks []string, failed func(check string, err error) error) error
}

// TablePositions is the ability of a destination to keep, in the
// transactions that apply changes, a position per table beside the
// mirror's: a table resync then catches up by itself from its copy's
// position while the other tables stream. The Applier of such a
// destination is a TablePositionCommitter.
type TablePositions interface {
	// TableStates returns the mirror's table resyncs under way.
	TableStates(ctx context.Context) (map[TableName]TableState, error)
	// PutTableState records st. Idempotent.
	PutTableState(ctx context.Context, st TableState) error
	// DeleteTableState forgets table's state. Idempotent.
	DeleteTableState(ctx context.Context, table TableName) error
}

// Emptier is the ability of a destination to empty a live table for a
// reload and restore it after (RESYNC TABLE with strategy 'truncate'):
// fast, with the table briefly empty.
type Emptier interface {
	// Empty records st (a StageCopy state) and empties live, dropping
	// what would slow its reload (indexes, the foreign keys that involve
	// it), in one transaction, and returns st with what it removed in
	// Saved. When st.Saved is set (an attempt cut off by a crash), that
	// record is used.
	Empty(ctx context.Context, live TableName, st TableState) (TableState, error)
	// Restore rebuilds on live what Empty removed (st.Saved), and its
	// primary key from d.
	Restore(ctx context.Context, d DestTable, st TableState) error
}

// TableRemover is the ability of a destination that can take one table out
// of a mirror while the others go on (ALTER MIRROR ... DROP TABLE, and
// undoing an ALTER MIRROR ... ADD TABLE that failed half-way).
type TableRemover interface {
	// RemoveTable forgets what the destination records for source table
	// source of the mirror (its loaded partitions, its table resync state)
	// and drops the temporary tables Sluice made and recorded for live (a
	// resync's shadow); with drop it also drops live (plain DROP, never
	// CASCADE: an object that depends on it makes it fail). Idempotent; on
	// error the caller may run it again.
	RemoveTable(ctx context.Context, source, live TableName, drop bool) error
}

// VersionedRows is the ability of a destination whose rows carry the
// source version that wrote them, where the newest version of a row wins
// and writing the same version again changes nothing: a replay converges
// without transactions, and a table resync swaps in a shadow after
// carrying the live table's newer rows (Swap.NewerThan) rather than
// catching up.
type VersionedRows interface {
	// VersionsRows documents the ability; it does nothing.
	VersionsRows()
}

// LateVersions is the ability of a VersionedRows destination's Applier to
// take a transaction an early stream sends before its commit
// (EarlyStreamer): its changes come with Version 0, as the only ones of
// the Applier's transaction, and are held aside as they come (ClickHouse:
// a stage table); SetVersion gives them their version, the EventCommit's,
// before Commit writes them where they belong. Rollback forgets them. Add
// fails with an error wrapping ErrEarlyAbandoned for a change it cannot
// hold aside: the flow then starts the stream again from the applied
// position, sending transactions at their commit for a while.
type LateVersions interface {
	// SetVersion sets the version of the changes added with Version 0.
	SetVersion(version uint64)
}
