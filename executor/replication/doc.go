// Package replication runs the mirrors: the snapshot engine (the initial
// load and the loads of resyncs) and the replication engine (the change
// stream applied in batches), written once against the seam of package
// connectors. A flow asks the registry (connectors.Registry) for the
// mirror's peers, opens a connectors.Source and a connectors.Destination,
// and never asks which database it talks to; what not every database can
// do is an ability (connectors.ShadowSwapper, TablePositions, Emptier,
// VersionedRows, ...), and a flow whose destination lacks one tells the
// user so, naming the peer type.
//
// Engine (engine.go) keeps one runner goroutine per running mirror and
// retries a failing step with backoff. A step reads everything it needs
// from the catalog (catalog.Mirror: phase, options, tables, the consistent
// position) and from the destination (the applied position, loaded
// partitions, table resync states): nothing is kept in memory from one
// step to the next, so a step killed anywhere is simply run again.
//
// The phases of a mirror, one file each:
//
//   - SETUP (setup.go): the source prepares the stream (Source.Prepare: a
//     publication), the destination its metadata and tables, then the
//     source makes the stream's origin with a consistent snapshot
//     (Source.StartMirror: a slot), whose position the catalog records.
//   - SNAPSHOT (snapshot.go): the tables are split into partitions
//     (Source.Plan, kept in the catalog) and loaded by parallel workers, each
//     with a PartitionReader under the snapshot and a Loader that writes a
//     partition and its done mark together; then LoadFinisher builds keys
//     and indexes.
//   - CDC (cdc.go, batcher.go): the stream from the applied position,
//     grouped into batches applied in one destination transaction each with
//     their end position, acknowledged to the source only after.
//   - RESYNC (fullresync.go): RESYNC MIRROR's shadow tables swapped in.
//
// RESYNC TABLE runs inside CDC: on a destination with TablePositions by
// catching up (resync_catchup.go), on one with VersionedRows by carrying
// newer rows into the shadow at the swap (resync_versioned.go).
//
// Held tables (held.go) live inside CDC as well: a table whose changes
// fail for a reason of its own (connectors.TableError) or that PAUSE
// MIRROR m TABLE t pauses is held at its position while the others
// stream, acknowledgements stay at that position, and RESUME MIRROR m
// TABLE t catches it up as a table resync's catch-up does.
//
// VALIDATE MIRROR runs inside CDC too (validate.go, batcher_validate.go):
// the batcher takes a source snapshot, applies the stream up to its
// position and no further, summarizes the destination there while the
// stream waits, and the statement summarizes the source under the
// snapshot.
//
// # A RESYNC TABLE m.public.users WITH (strategy = 'swap'), layer by layer
//
//  1. server/ reads the Query message and hands the text to the session;
//     sqlext/ parses it into a ResyncTable statement.
//  2. executor/ (resync.go) checks the mirror streams, opens the
//     destination and checks it can (resyncAbility: TablePositions and
//     ShadowSwapper; ShadowSwapper.CheckSwappable), records the request in
//     the catalog (catalog.Store.StartTableResync) and wakes the runner
//     (Engine.Run).
//  3. Here, the CDC step's poll sees the request and restarts the stream;
//     planResyncs starts a copy: the source gives a snapshot of its own
//     (TableSnapshotter: a temporary slot), the destination makes a shadow
//     table (ShadowSwapper.CreateShadow, recorded as Sluice's own) and the
//     snapshot engine loads it (loadTables), then FinishLoad builds its
//     indexes; the destination records stage catchup at the snapshot's
//     position (TablePositions.PutTableState).
//  4. The stream restarts from the lowest position; the batcher applies the
//     table's changes after its own position to the shadow, the others'
//     after the mirror's, each batch committing the positions it reached
//     (TablePositionCommitter.CommitTables). Once the table has caught up,
//     ShadowSwapper.SwapIn swaps the shadow in, in one transaction that
//     also forgets the resync's state.
//  5. connectors/postgres does each of these in SQL; connectors/clickhouse
//     instead keeps loading versioned rows and carries the live table's
//     newer rows over at the swap.
//
// # One change, layer by layer
//
// An UPDATE committed on the source reaches the stream (connectors/postgres
// decodes pgoutput into connectors.Event values: Begin, Change, Commit);
// the batcher's reader goroutine hands events over in chunks; the batcher
// adds the change to the open destination transaction
// (connectors.Applier.Add) and, at the end of the batch, commits it with
// the transaction's end position (Applier.Commit), records the batch in the
// catalog (catalog.Store.RecordSync) and only then acknowledges the
// position to the source (Stream.Ack). A crash before the commit replays
// the change; one after finds the position on the destination and skips
// it.
package replication
