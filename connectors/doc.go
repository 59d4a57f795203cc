// Package connectors is the seam between Sluice's flows and the databases:
// the interfaces every database's package implements, and what they share.
//
//   - A mirror's source: Source (source.go) describes tables, prepares and
//     starts the change stream with a consistent snapshot, splits tables
//     into partitions read under it (PartitionReader), streams changes
//     (Stream, Event; stream.go) from a Position (position.go), and tears
//     down. Abilities: TableSnapshotter, IndexDefiner, ColumnReader,
//     MirrorChecker, LagReporter, StreamTaker (fence.go).
//   - A mirror's destination: Destination (destination.go) makes tables and
//     metadata, loads partitions (Loader) and applies changes (Applier,
//     applier.go), and tears down in two phases (Pending). Abilities:
//     LoadFinisher, IndexCreator, TablePlanner, SortingKeys,
//     SchemaFollower, TableChecker, ShadowSwapper, ConstraintValidator,
//     Analyzer, TablePositions (with TableState, tablestate.go, and
//     TablePositionCommitter), Emptier, VersionedRows, Fencer (fence.go:
//     the lease epoch kept with the applied position, ErrFenced).
//   - The kinds of peers (Kind, Registry; kind.go): what CREATE PEER ...
//     FROM <type> accepts and checks, and what such a peer can be. A
//     parsed Peer that can be a source is a SourcePeer, one that can be a
//     destination a DestinationPeer.
//   - Client sessions' reads on peers (FederatedReader, federated.go;
//     WireDialer, connect.go).
//   - What all share: table names and schemas (schema.go), changes and
//     values (change.go), option parsing and errors (options.go, tls.go),
//     names of temporary tables (tempname.go).
//
// Each database has its own package (connectors/postgres,
// connectors/clickhouse) that asserts the interfaces it implements at
// compile time; connectors/all lists them, and cmd/sluice hands the
// registry to the executor. docs/architecture.md lists who implements
// what, and what a new database must.
//
// # A RESYNC TABLE ... WITH (strategy = 'swap'), as this package sees it
//
// The statement checks the destination has TablePositions and
// ShadowSwapper (or VersionedRows and ShadowSwapper) and calls
// ShadowSwapper.CheckSwappable. The flow takes a snapshot with
// TableSnapshotter, makes a shadow with ShadowSwapper.CreateShadow, loads
// it with a PartitionReader and a Loader, records a TableState at the
// snapshot's Position, catches up through
// TablePositionCommitter.CommitTables, and swaps with ShadowSwapper.SwapIn
// (Swap.EndResync).
//
// # One change, as this package sees it
//
// A Stream's Read returns an EventBegin (Pos, Version), an EventChange (a
// Change in the columns of the table's TableSchema) and an EventCommit
// (Pos: the transaction's end). The flow hands the Change to Applier.Add,
// commits with Applier.Commit(end), and then acknowledges with
// Stream.Ack(end).
package connectors
