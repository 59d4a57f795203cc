// Package executor runs statements: Sluice's own verbs (one file per
// statement kind) and standard SQL, which it routes either to the catalog
// (status views, SET, SHOW, psql's catalog look-ups) or, for a query naming
// a peer as in SELECT ... FROM peer.schema.table, to that peer. The mirrors'
// flows run in the replication engine (executor/replication), which the
// executor starts (engine.go) and wakes when a statement changes a mirror;
// the slot monitor (monitor.go) measures the mirrors' streams through the
// sources (connectors.LagReporter), and the lag history sampler
// (lag_history.go) keeps mirror_lag_history, each as a River periodic job
// the engine's client runs on one node a period. What the flows measure
// that the catalog does not keep goes to the Observer of executor.Config
// (server/metrics).
//
// Sessions query the catalog as its unprivileged reader role
// (catalog.Store.ReaderURL), read-only, on connections they share from a
// bounded pool (catalog_pool.go); statements that could write are refused
// before they reach it (readonly.go). Federated queries and cursors over
// them run on a read-only connection to the peer (peercursor.go);
// EXECUTE peer('...') and writes by peer name (peerwrite.go) on a
// read-write one. On a ClickHouse peer, federated queries and EXECUTE go to
// the connector through connectors.FederatedReader (federated.go). No file
// here imports a connector: peers are reached through the registry of
// kinds (executor.Config.Kinds) and the interfaces of package connectors.
//
// # A RESYNC TABLE m.public.users WITH (strategy = 'swap')
//
// session.go dispatches the parsed statement to resync.go, which checks
// the mirror is streaming, opens the destination and checks it can run the
// resync (resyncAbility, CheckSwappable), records the request in the
// catalog and wakes the mirror's runner. The replication engine does the
// rest (see its package comment); SELECT * FROM mirror_tables shows the
// steps as they go.
//
// # One change
//
// No statement is involved: the replication engine applies it. The status
// views (catalog/) show it in mirrors.last_synced_lsn and rows_synced, and
// the slot monitor shows the lag it leaves.
package executor
