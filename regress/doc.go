// Package regress is Sluice's SQL regression suite, in the manner of
// Postgres' pg_regress: each sql/NAME.sql is run through the real psql client
// against a fresh Sluice server, and psql's output (stdout and stderr
// interleaved, as a terminal would show them) must match expected/NAME.out.
//
// The package holds only the runner (regress_test.go) and its data:
//
//	sql/NAME.sql       the input, one file per concern, commented
//	expected/NAME.out  the blessed output
//	results/NAME.out   the actual output of a failed run (git-ignored)
//	include/*.sql      files the inputs include: wait.sql polls a status
//	                   query until a background flow gets where the file
//	                   expects, printing nothing however long it waits
//
// Run the suite, one file, or re-bless the expected output:
//
//	go test ./regress/
//	go test ./regress/ -run TestRegress/peers
//	go test ./regress/ -run TestRegress/peers -update
//
// A re-blessed file must be read before it is committed: the expected output
// states what is correct, not merely what the server happens to do.
//
// Each file sees these psql variables, describing a fresh database on a peer
// cluster: peer_host, peer_port, peer_user, peer_password, peer_db (and
// peer_db2, a second one), and peer_plain_user, peer_plain_password (a login
// without the REPLICATION privilege); and ch_port, ch_db: a fresh database
// on a ClickHouse server. The files run in parallel on one peer cluster,
// where replication slots are shared: each file gives its mirrors names no
// other file uses. Their values, and the peer's server version, are replaced in
// the output by placeholders such as <peer_port> and <pg_version>, so the
// output does not depend on ports, database names or the installed Postgres.
// For the same reason the LOCATION lines psql prints in verbose mode (a
// source file and line of the Postgres server that raised a relayed error)
// are dropped.
package regress
