package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// The source side of the seam between the flows and the databases. A flow
// opens a Source from the mirror's source peer (SourcePeer), and through
// it describes tables, prepares the mirror's change stream, reads the
// initial load under a consistent snapshot and streams changes from a
// Position. Abilities that not every source has are separate interfaces
// below; a flow asks for one with a type assertion and, where the source
// lacks it, tells the user so naming the peer type.

// Errors a Source returns, wrapped, that flows and statements act on.
var (
	// ErrTableNotFound: the table does not exist on the source (or the
	// peer's user cannot see it).
	ErrTableNotFound = errors.New("table not found")
	// ErrNoPrimaryKey: the table has no key that identifies its rows in
	// the change stream.
	ErrNoPrimaryKey = errors.New("table has no primary key and its replica identity is not FULL")
	// ErrStreamLost: the source discarded changes the mirror's stream still
	// needed (a Postgres slot invalidated); only a full resync recovers.
	ErrStreamLost = errors.New("change stream lost")
	// ErrUnsupportedType: a column's type cannot be replicated (the
	// message names the column; excluding it mirrors the rest).
	ErrUnsupportedType = errors.New("type not supported")
	// ErrTeardownUncertain: Teardown failed at a point where the source
	// may have dropped the stream's origin (a slot's drop is not
	// transactional) while keeping the rest.
	ErrTeardownUncertain = errors.New("the replication slot may be dropped")
)

// MissingExcludeError is Source.Describe's error for a column named in
// exclude that the table does not have. CREATE MIRROR refuses it (42703);
// a running mirror whose excluded column the source dropped describes the
// table again without it.
type MissingExcludeError struct {
	Table  TableName
	Column string
}

func (e *MissingExcludeError) Error() string {
	return fmt.Sprintf("describe table %s: excluded column %q does not exist", e.Table, e.Column)
}

// SourcePeer is the ability of a Peer (see Kind.Parse) that can be a
// mirror's source.
type SourcePeer interface {
	// OpenSource connects to the peer as application appName. The caller
	// closes the Source.
	OpenSource(ctx context.Context, appName string) (Source, error)
	// DefaultSchema is the schema (MySQL: the database) of the source
	// tables a table mapping names without one; "" when the peer has none
	// and mappings must name it. No I/O.
	DefaultSchema() string
}

// StreamSpec names what a source keeps for one mirror's change stream
// (Postgres: a publication and a replication slot). A value.
type StreamSpec struct {
	Mirror      string
	Slot        string
	Publication string
	// From is where the mirror's stream resumes (what the destination
	// applied, or the initial load's position), "" when not known: a
	// source that keeps nothing per mirror (MySQL) checks and measures the
	// stream from it.
	From Position
}

// Source is a connection to a mirror's source. Not safe for concurrent use,
// except OpenReader: a flow that reads in parallel opens a PartitionReader
// per worker, from its workers.
type Source interface {
	// Describe returns the replicated columns of table, without the
	// columns in exclude, and its key. A missing table is an error
	// wrapping ErrTableNotFound; a table without a usable key, one
	// wrapping ErrNoPrimaryKey.
	Describe(ctx context.Context, table TableName, exclude []string) (*TableSchema, error)
	// Prepare makes what spec's change stream needs to carry the changes
	// of tables (a publication), or, with replace, makes it anew (a full
	// resync picks up tables and definitions that changed). Idempotent.
	Prepare(ctx context.Context, spec StreamSpec, tables []TableName, replace bool) error
	// StartMirror makes spec's stream origin (the slot), replacing one an
	// earlier attempt left, and returns a snapshot consistent with it: the
	// stream started at the snapshot's Position delivers exactly the
	// changes committed after the snapshot. The snapshot stays readable
	// (OpenReader) until it is closed, which the caller does.
	StartMirror(ctx context.Context, spec StreamSpec) (*Snapshot, error)
	// Plan splits table, described by ts, into partitions for the initial
	// load, of about rowsPerPartition(estimated rows) rows each. The
	// partitions cover the whole table, whatever rows it has when they are
	// read; there is at least one.
	Plan(ctx context.Context, table TableName, ts *TableSchema, rowsPerPartition func(estimatedRows int64) int64) (PartitionPlan, error)
	// OpenReader opens a reader of partitions, on a connection of its own,
	// under snapshot (Snapshot.Name), or under a fresh snapshot of its own
	// when snapshot is "" (a load resumed after its snapshot was lost).
	// Safe for concurrent use (with itself, not with the other methods).
	OpenReader(ctx context.Context, snapshot string) (PartitionReader, error)
	// Stream starts spec's change stream at from: the changes of the
	// transactions committed after it, for tables (their current schemas,
	// which the stream decodes with and extends when the source adds
	// columns). An error wraps ErrStreamLost when the stream cannot resume.
	Stream(ctx context.Context, spec StreamSpec, from Position, tables map[TableName]*TableSchema) (Stream, error)
	// CheckStream returns an error wrapping ErrStreamLost when the source
	// discarded what spec's stream needs; nil when it can resume or does
	// not exist.
	CheckStream(ctx context.Context, spec StreamSpec) error
	// Teardown drops what Prepare and StartMirror made for spec, ending a
	// reader still using it. Idempotent. An error wrapping
	// ErrTeardownUncertain means it may be partly done; any other, that
	// nothing changed.
	Teardown(ctx context.Context, spec StreamSpec) error
	// Close closes the connection. The Source is not used after.
	Close(ctx context.Context) error
}

// Snapshot is a consistent view of a source, readable by PartitionReaders
// while it is open.
type Snapshot struct {
	// Name identifies the snapshot for Source.OpenReader.
	Name string
	// Position is where the snapshot stands in the change history: it
	// holds every change committed up to it and none after.
	Position Position
	// Version is Position as a number that increases with it, for
	// destinations that keep a version in each row (Change.Version is the
	// same number for changes).
	Version uint64
	close   func()
}

// NewSnapshot returns a snapshot that close releases. For connectors.
func NewSnapshot(name string, pos Position, version uint64, close func()) *Snapshot {
	return &Snapshot{Name: name, Position: pos, Version: version, close: close}
}

// Close releases the snapshot; readers opened under it keep reading.
// Idempotent; a nil Snapshot is closed.
func (s *Snapshot) Close() {
	if s != nil && s.close != nil {
		s.close()
		s.close = nil
	}
}

// Partition is one partition of a table's initial load as the source
// describes it (for Postgres, a range of heap pages): opaque to flows,
// which store a table's plan in the catalog as a JSON array of them and
// number partitions by their place in it.
type Partition = json.RawMessage

// PartitionPlan is a table's initial-load plan.
type PartitionPlan struct {
	Partitions []Partition
	// EstimatedRows is the source's estimate of the table's rows (counted
	// for a small table without an estimate).
	EstimatedRows int64
}

// PartitionReader reads partitions of tables under one snapshot, on a
// connection of its own. Not safe for concurrent use.
type PartitionReader interface {
	// Read reads the columns of ts of partition part of table and hands
	// the rows to fn in batches of at most batch rows (the values live in
	// memory the reader does not reuse), and returns the number of rows.
	// progress, when not nil, is called with the rows read so far, from
	// any goroutine, never after Read returns. After an error the reader
	// is only closed.
	Read(ctx context.Context, table TableName, ts *TableSchema, part Partition, batch int,
		fn func(rows [][]Value) error, progress func(rows int64)) (int64, error)
	// Close ends the reader's snapshot and connection.
	Close(ctx context.Context) error
}

// TableSnapshotter is the ability of a source to take a snapshot of its own
// for one table, outside the mirror's stream (a table resync), with the
// position it stands at.
type TableSnapshotter interface {
	// TableSnapshot returns a new snapshot and its position; the mirror's
	// stream is left as it is. The caller closes it.
	TableSnapshot(ctx context.Context) (*Snapshot, error)
}

// EarlyStreamer is the ability of a source to send a large transaction's
// changes while it is still in progress, so that the destination applies
// them while the source is still decoding the rest (Postgres 14 and later:
// pgoutput's streaming). Its stream sends such a transaction as an
// EventBegin with Open, ended by an EventCommit or an EventAbort; a
// transaction that commits while one is open is folded into the open one
// (its changes come as the open transaction's, in the order the source
// sent them), and is acknowledged with it. When the open transaction can
// no longer be applied as one, or those folded into it have waited too
// long for its commit, Read returns an error wrapping ErrEarlyAbandoned.
// Only for destinations that need no version before a transaction commits
// (not VersionedRows), or whose applier can give the changes their version
// at the commit (LateVersions).
type EarlyStreamer interface {
	// StreamEarly is Source.Stream with large transactions sent early.
	StreamEarly(ctx context.Context, spec StreamSpec, from Position, tables map[TableName]*TableSchema) (Stream, error)
}

// IndexDefiner is the ability of a source to describe a table's indexes and
// foreign keys as Postgres DDL for a destination table
// (replicate_indexes, replicate_foreign_keys).
type IndexDefiner interface {
	// IndexDDL returns the statements that create ts's secondary indexes
	// on dest.
	IndexDDL(ctx context.Context, ts *TableSchema, dest TableName) ([]string, error)
	// ForeignKeyDDL returns the statements that add, to dest, ts's foreign
	// keys whose referenced tables are mirrored (names maps source tables
	// to their destination tables); others are left out.
	ForeignKeyDDL(ctx context.Context, ts *TableSchema, dest TableName, names map[TableName]TableName) ([]string, error)
}

// ColumnReader is the ability of a source to read some columns of every row
// of a table as it is now, with its key: how a destination fills in the
// columns the source added to rows it already has.
type ColumnReader interface {
	// ReadColumns reads key and then cols of every row of table, handing
	// the rows to fn in batches of at most batch rows, and returns how many
	// rows it read. It reads in a snapshot of its own.
	ReadColumns(ctx context.Context, table TableName, key, cols []string, batch int, fn func(rows [][]Value) error) (int64, error)
	// CurrentValues returns, for each of cols that has one, the value that
	// the source's rows stored before the column was added read (a
	// non-volatile default the source stored once); a column not in the
	// result reads NULL or differs per row.
	CurrentValues(ctx context.Context, table TableName, cols []string) (map[string]Value, error)
}

// MirrorChecker is the ability of a source to check, before a mirror is
// made, that it can stream changes for it.
type MirrorChecker interface {
	// CanStream returns a *sqlerr.Error saying what to change when the
	// source cannot be a change source at all (a setting, a privilege);
	// the caller prefixes its message with the peer's name.
	CanStream(ctx context.Context) error
	// NamesFree returns a *sqlerr.Error naming the option to change when
	// what spec names (publication, slot) exists already on the source.
	NamesFree(ctx context.Context, spec StreamSpec) error
}

// StreamLag is a source's measure of one mirror's change stream. A field
// the source cannot measure is nil.
type StreamLag struct {
	// Bytes is how far the source's changes are beyond what the stream
	// acknowledged (Postgres: pg_current_wal_lsn() - confirmed_flush_lsn).
	Bytes *int64
	// Status is the source's word for the state of what it keeps for the
	// stream (Postgres: the slot's wal_status).
	Status *string
	// SafeBytes is how much more the source may keep for the stream
	// before it discards changes the stream needs (safe_wal_size).
	SafeBytes *int64
	// Lost says the source discarded changes the stream still needed: only
	// a resync recovers.
	Lost bool
	// Active says whether a reader is connected to the stream now
	// (Postgres: pg_replication_slots.active; MySQL: a replica with the
	// mirror's server id is connected); nil when the source cannot tell.
	Active *bool
	// Warning, when not "", says in the source's words that it may soon
	// discard changes the stream still needs (a Postgres slot's WAL
	// unreserved; a MySQL mirror's binlog file the oldest the server
	// keeps).
	Warning string
}

// LagReporter is the ability of a source to measure its mirrors' streams.
type LagReporter interface {
	// StreamLags measures the streams of specs, by StreamSpec.Mirror; a
	// stream the source does not have is left out.
	StreamLags(ctx context.Context, specs []StreamSpec) (map[string]StreamLag, error)
}
