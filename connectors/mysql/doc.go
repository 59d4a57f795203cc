// Package mysql is the MySQL and MariaDB source connector: the MYSQL kind
// of peer (CREATE PEER ... FROM MYSQL), a source only. It uses
// github.com/go-mysql-org/go-mysql: its client for SQL, its replication
// package for the binlog.
//
// # Peer options
//
// As PeerDB names them: host, user (required), password, port (3306),
// database (the connections' default database; mirrors name their tables'
// databases themselves), flavor (mysql or mariadb; detected from VERSION()
// when omitted), replication_mechanism (gtid, filepos or auto: by GTID on
// MariaDB, by file and offset on MySQL, where gtid is refused), server_id
// (the base of the binlog readers' replica ids, DefaultServerID: each
// mirror adds a number derived from its name), and the TLS options of the other peers (require_tls,
// disable_tls, root_ca, tls_host, certificate, private_key,
// skip_cert_verification; TLS is tried, then plain text unless required).
// Connections run in UTC and utf8mb4.
//
// # Checks
//
// CREATE MIRROR (Source.CanStream) needs log_bin on, binlog_format=ROW,
// binlog_row_image=FULL, binlog_row_metadata=FULL (MariaDB's defaults are
// MIXED and NO_LOG; without full metadata the binlog names no columns),
// and the REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR)
// privileges. CREATE PEER warns with the same words, and reports the
// binlog retention (a warning under three days).
//
// # Tables and types
//
// A MySQL database is a TableName's Schema (app.users). A table needs a
// primary key. Each column maps to the Postgres type that holds all its
// values exactly, and values cross the seam in that type's binary send
// format (encode.go), from a SELECT (the initial load) and from the binlog
// alike:
//
//	MySQL / MariaDB                  Postgres                 note
//	tinyint, tinyint unsigned        smallint                 tinyint(1)/BOOLEAN too: it holds -128..127
//	smallint                         smallint
//	smallint unsigned, mediumint     integer                  mediumint unsigned too
//	int                              integer
//	int unsigned                     bigint
//	bigint                           bigint
//	bigint unsigned                  numeric(20,0)
//	decimal(p,s)                     numeric(p,s)             the scale kept: 1.50 stays 1.50
//	float                            real                     read as DOUBLE: a FLOAT's text has 6 digits
//	double                           double precision
//	bit(n)                           bit varying(n)           always n bits
//	year                             smallint                 0 for YEAR 0000
//	date                             date                     zero dates are NULL
//	datetime(fsp)                    timestamp(fsp)           zero dates are NULL
//	timestamp(fsp)                   timestamptz(fsp)         UTC; the zero timestamp is NULL
//	time(fsp)                        interval(fsp)            -838:59:59..838:59:59, as hours
//	char(n), varchar(n)              varchar(n)               any charset, as UTF-8
//	tinytext..longtext               text
//	binary(n), varbinary, blobs      bytea                    binary(n) with its trailing zero bytes
//	enum                             text                     the label
//	set                              text[]                   the members, in declaration order
//	json (MySQL), json (MariaDB)     jsonb                    MariaDB's LONGTEXT with json_valid
//	geometry types                   bytea                    the WKB, without MySQL's 4-byte SRID
//	others (uuid, inet4/6, vector)   refused                  ErrUnsupportedType: exclude the column
//
// Zero dates ('0000-00-00', and dates with a zero month or day) have no
// Postgres value and become NULL; -infinity was rejected, since it is a
// value queries sort and compare and ClickHouse has none. Postgres text
// holds no NUL character: a text value with one is an error naming the
// column. Binlog text in latin1 (Windows-1252) is converted; columns in
// charsets other than utf8mb4, utf8mb3, ascii and latin1 are refused at
// CREATE MIRROR. Date and time columns take NULL on the destination even
// when NOT NULL on the source (a zero date).
//
// # Positions
//
// A connectors.Position is "SSSSSSOOOOOOOOOO FILE": 16 hex digits, the
// binlog file's sequence number (24 bits) and the offset in it (40 bits),
// which is also the Version; then the file name (position.go). It holds no
// GTID state, so that each point has one rendering; a stream resuming by
// GTID asks MariaDB for the state at the position. The order holds within
// one server's binlog history; RESET MASTER or a failover breaks it.
//
// # Snapshots
//
// MariaDB reports the binlog position of a consistent snapshot
// (binlog_snapshot_file, binlog_snapshot_position): the stream starts
// exactly at the snapshot. MySQL has no such status: the
// position is read first and the stream replays from it; full row images
// keyed by the primary key make the replay converge. Readers take snapshots
// of their own (MySQL cannot share one), so rows they read may be newer
// than the snapshot: the replay converges the same way (snapshot.go).
//
// # Validation
//
// VALIDATE MIRROR needs the source's side at exactly the snapshot's
// position: Source.SummarySnapshot keeps the snapshot's transaction open,
// on a connection of its own, until the validation ends, and
// SummarizeSnapshot queries on it; each column rendered as the
// destination renders the mirrored value (summary.go, render.go). Only on
// MariaDB: MySQL's position is not exact, and is refused.
//
// # The change stream
//
// Source.Stream reads the binlog as a replica (stream.go), decoded on a
// goroutine of its own (binlog_stream.go) into whole transactions of the
// mirrored tables' changes (binlog_decode.go): inserts, updates (of the
// key too), deletes, TRUNCATE, and columns added, which rows show.
// DROP/RENAME of a mirrored table, a dropped or renamed column and a
// column's type change stop it with an error naming them. Lag is the
// binlog's bytes after the mirror's position, and a mirror whose binlog
// file the server purged is lost (lag.go).
//
// # Not yet
//
// Index DDL (replicate_indexes), a warning before retention catches up
// with a mirror, failover. Sessions cannot query a MYSQL peer (no
// federated reader): the executor refuses such queries as not supported.
package mysql
