// Package clickhouse is the ClickHouse connector: a mirror's destination,
// and federated reads for client sessions.
//
//   - Peers: configuration, native-protocol connections
//     (github.com/ClickHouse/clickhouse-go/v2) and validation (peer.go,
//     probe.go; the kind, connectors.Kind, in kind.go).
//   - Destination (destination*.go): ReplacingMergeTree tables with a
//     version and a deleted column (types.go, ddl.go), value conversion
//     (convert.go), the initial load in typed columns and multi-block
//     inserts (destination_load.go, load_*.go), batch writes (write.go),
//     the applier, which folds changes into windows of bounded size and
//     writes each as a block (apply.go, apply_window.go, apply_flush.go,
//     apply_block.go), added columns (alter.go), shadow-and-swap by EXCHANGE TABLES or RENAME
//     (swap.go, owned.go), and the metadata of applied positions and
//     loaded partitions (meta.go). docs/clickhouse.md describes the tables.
//     Rows carry the source's version (connectors.VersionedRows): writing
//     a batch again changes nothing, so the connector needs no
//     transactions.
//   - Federated reads (connectors.FederatedReader, federated*.go): SELECT
//     ... FROM ch.table and EXECUTE ch('...') run on the peer, their
//     results mapped to Postgres types (federated_types.go), parameters
//     bound into the text (federated_params.go) and String columns mirrored
//     from bytea read back as bytea (federated_bytea.go).
//
// The oldest server it is tested with is 18.16 (Debian's package). There
// the native protocol works but the HTTP protocol does not, so connections
// always use the native one.
//
// # A RESYNC TABLE ... WITH (strategy = 'swap') into ClickHouse
//
// The live table keeps streaming. CreateShadow makes the shadow, with the
// table's current sorting key, recorded and marked as Sluice's own; the
// Loader writes every row of the source's snapshot with the snapshot's
// version; SwapIn with Swap.NewerThan adds columns the live table gained,
// carries the live table's rows of a later version (and its deleted rows)
// into the shadow, and swaps the two.
//
// # One change
//
// The applier writes an update as a row with the change's version and
// deleted = 0 (a delete: deleted = 1; an update that moves the row in the
// sorting key also writes the old key's row as moved, deleted = 2), and
// then the batch's end position in the metadata: a crash in between writes
// the batch again with the same versions, which ReplacingMergeTree
// collapses.
package clickhouse
