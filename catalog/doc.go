// Package catalog keeps sluice's state in a Postgres database: the peers it
// knows and, in later migrations, mirrors and their progress. A Store, made
// by Open and passed explicitly, is the only way in; the package reads no
// environment and does not log.
//
// # Layout
//
// The catalog database holds two schemas, in two layers:
//
//   - sluice: the internal tables, written only through this package (and by
//     later packages through Store.Pool). sluice.schema_migrations records
//     the applied migrations; sluice.settings holds catalog-wide values such
//     as the key check; sluice.peers holds one row per peer, its options
//     encrypted in options_sealed next to a few clear display columns (host,
//     port, database, username) derived from them when the peer is stored.
//   - sluice_status (StatusSchema): read-only views for users. Front-end
//     sessions query the catalog with search_path = sluice_status, so plain
//     SQL such as SELECT * FROM peers WHERE type = 'POSTGRES' ORDER BY name,
//     joins and aggregates work on them. A view never exposes a secret:
//     sluice_status.peers has name, type, host, port, database, "user" and
//     created_at only.
//
// # The reader role
//
// Front-end sessions do not query the catalog as its owner. When the
// catalog's user may create roles, Open (after the migrations, so that new
// views are covered) makes sure a LOGIN role named sluice_reader_ plus the
// first 10 hex digits of md5(current_database()) exists, gives it a fresh
// random password (sent as a SCRAM verifier, so statement logs never hold
// it, and kept sealed in sluice.settings so other processes sharing the
// catalog can learn it: Store.RefreshReaderURL), takes back any attribute,
// membership or privilege it was given on schemas sluice, sluice_status and
// public, and grants it USAGE on sluice_status and SELECT on its views,
// which read the internal tables with their owner's rights. The role has
// default_transaction_read_only = on and search_path = sluice_status. Roles
// are cluster-wide, so this is done by Open, not by a migration; it happens
// in one transaction, under the migration lock. Store.ReaderURL is the
// catalog URL with that user and password. When the catalog's user cannot
// create roles (or lacks a privilege for a step), nothing is changed,
// ReaderURL is the catalog URL itself and Store.ReaderIsolated reports
// false, for the caller to warn about.
//
// # Migrations
//
// The schema is built by numbered SQL files, migrations/NNNN_name.sql,
// embedded in the binary. Open takes a session advisory lock on a dedicated
// connection, so concurrent starts run one after another; creates schema
// sluice and sluice.schema_migrations when missing; applies each pending
// migration in its own transaction together with its version row; and
// releases the lock. A catalog whose version is newer than the newest
// embedded migration is refused with a *SchemaVersionError: an older sluice
// never runs against a schema it does not know. Migrations are append-only:
// never edit one that has shipped, add the next number.
//
// River's job tables (the cluster's jobs) are part of the schema: some
// migrations first apply River's own migrations, in schema sluice and in
// the same transaction (river.go), so the catalog's version implies
// River's and the one version check covers both.
//
// # Secrets
//
// A peer's whole option map, secrets included, is encoded as JSON and
// sealed with AES-256-GCM (a random 12-byte nonce prepended to the
// ciphertext, the peer's name as additional data) into
// sluice.peers.options_sealed; only the sealed bytes reach the database.
// The 32-byte key comes from LoadKey: SLUICE_SECRET_KEY when set, else a key
// file (mode 0600) in the data directory. The first Open stores a sealed
// known value in sluice.settings; a later Open with another key fails with
// ErrKeyMismatch instead of failing later on each peer.
package catalog
