// Package postgres is the Postgres connector, both a mirror's source and
// its destination.
//
//   - Peers: configuration and validation (peer.go), the kind
//     (connectors.Kind, kind.go), connections (replication.go,
//     connect_error.go), and the Postgres protocol for client sessions
//     (connectors.WireDialer).
//   - Source (source.go, source_reader.go, source_checks.go): the
//     publication and the slot, the slot's exported snapshot, partitions
//     of heap pages (snapshot.go) read as binary COPY (read.go), the
//     pgoutput change stream (stream.go), temporary slots for table
//     resyncs, index and foreign-key DDL (ddl.go), and the slots' lag.
//   - Destination (destination*.go): tables (ddl.go), loads that pipe
//     binary COPY straight from a Postgres source's snapshot into the table
//     with the partition's done mark in one transaction (snapshot.go), the
//     applier of batches (apply*.go), shadow-and-swap (swap*.go, owned.go),
//     empty-and-restore (truncate.go), added columns (alter.go), and the
//     metadata of applied positions, loaded partitions and table resyncs
//     (meta.go, tablestate.go). Positions are LSNs written as 16 hex digits
//     (position.go).
//
// # A RESYNC TABLE ... WITH (strategy = 'swap') into Postgres
//
// Source.TableSnapshot makes a temporary slot with an exported snapshot;
// Destination.CreateShadow makes the shadow table under a free name and
// records its OID as Sluice's own; Loader.Load pipes each partition's COPY
// from the snapshot into it; FinishLoad builds the primary key and copies
// of the live table's indexes; PutTableState records the copy's LSN; the
// applier's CommitTables applies the table's later changes to the shadow
// with the positions reached; SwapIn renames the shadow in, in one
// transaction that re-adds foreign keys NOT VALID, recreates views and
// forgets the resync.
//
// # One change
//
// The stream (stream.go) decodes a pgoutput Begin, Update and Commit into
// connectors.Event values, the update's columns in binary form; the
// applier (apply*.go) stages the batch's rows by COPY and applies them with
// one statement per table and kind, then writes the batch's end position
// in the same transaction.
package postgres
