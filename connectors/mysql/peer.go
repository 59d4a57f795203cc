package mysql

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/sqlerr"
)

// Flavors of server a peer may be (option flavor).
const (
	FlavorMySQL   = "mysql"
	FlavorMariaDB = "mariadb"
)

// Replication mechanisms (option replication_mechanism): how the binlog
// reader names where it starts. auto and gtid resume by GTID on MariaDB
// (which tells the GTID state at a position, BINLOG_GTID_POS); on MySQL a
// stream resumes by file and offset, so gtid is refused there and auto
// reads by file and offset.
const (
	MechanismAuto    = "auto"
	MechanismGTID    = "gtid"
	MechanismFilePos = "filepos"
)

// DefaultServerID is the replica server id the binlog reader registers
// with when the peer sets none. A server refuses two replicas with the same
// id (the second one connecting ends the first one's stream), so each
// mirror of one server needs its own: the stream adds a number under
// serverIDSpan derived from the mirror's name (mirrorServerID). Chosen
// high, away from the small ids people give real replicas.
const DefaultServerID = 2_140_000_000

// PeerConfig is a MySQL or MariaDB peer's settings, parsed from the options
// of CREATE PEER ... FROM MYSQL. A value once parsed; safe for concurrent
// use.
type PeerConfig struct {
	Host     string
	Port     int
	User     string
	Password string
	// Database is the default database of connections; "" for none (a
	// mirror names its tables' databases itself).
	Database string
	// Flavor is FlavorMySQL, FlavorMariaDB, or "" to detect it from the
	// server's version at Check and Open.
	Flavor string
	// Mechanism is MechanismAuto, MechanismGTID or MechanismFilePos.
	Mechanism string
	// ServerID is the replica id the binlog reader uses.
	ServerID uint32
	// TLS as for the other peers: by default TLS is tried and plain text
	// used when the server does not take it.
	connectors.TLSOptions
}

// OptionKeys lists every option a MySQL peer accepts, sorted.
var OptionKeys = []string{"certificate", "database", "disable_tls", "flavor", "host", "password", "port",
	"private_key", "replication_mechanism", "require_tls", "root_ca", "server_id", "skip_cert_verification",
	"tls_host", "user"}

// optionSpec declares a MySQL peer's options.
var optionSpec = connectors.OptionSpec{PeerType: "MYSQL", Keys: OptionKeys}

// ParsePeerOptions validates opts (keys lower-case) and returns the config.
// An unknown key, a missing required key (host, user) or a bad value is an
// *connectors.OptionError naming the key. Defaults: port 3306, flavor
// detected, replication_mechanism auto, server_id DefaultServerID. It does
// no I/O.
func ParsePeerOptions(opts map[string]string) (*PeerConfig, error) {
	v, err := optionSpec.Parse(opts)
	if err != nil {
		return nil, err
	}
	cfg := &PeerConfig{
		Host:     v.Required("host"),
		User:     v.Required("user"),
		Password: v.String("password", ""),
		Database: v.String("database", ""),
	}
	cfg.Port = v.Port("port", 3306)
	cfg.TLSOptions = v.TLS()
	if err := v.Err(); err != nil {
		return nil, err
	}
	switch f := strings.ToLower(strings.TrimSpace(v.String("flavor", ""))); f {
	case "", FlavorMySQL, FlavorMariaDB:
		cfg.Flavor = f
	default:
		return nil, &connectors.OptionError{Key: "flavor", Reason: fmt.Sprintf("%q is not mysql or mariadb", opts["flavor"])}
	}
	switch m := strings.ToLower(strings.TrimSpace(v.String("replication_mechanism", MechanismAuto))); m {
	case MechanismAuto, MechanismGTID, MechanismFilePos:
		cfg.Mechanism = m
	default:
		return nil, &connectors.OptionError{Key: "replication_mechanism",
			Reason: fmt.Sprintf("%q is not gtid, filepos or auto", opts["replication_mechanism"])}
	}
	cfg.ServerID = DefaultServerID
	if s, ok := opts["server_id"]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil || n == 0 {
			return nil, &connectors.OptionError{Key: "server_id",
				Reason: fmt.Sprintf("%q is not a server id (1-4294967295)", s)}
		}
		cfg.ServerID = uint32(n)
	}
	if err := cfg.TLSOptions.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Addr returns host:port.
func (c *PeerConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// connectTimeout bounds a connection attempt.
const connectTimeout = 15 * time.Second

// Connect opens an SQL connection to the peer, in UTC (time_zone
// '+00:00', so that TIMESTAMP values read as UTC) with utf8mb4 (so that
// text of any column's charset arrives as UTF-8). TLS is tried first unless
// disable_tls; without require_tls a failed TLS attempt is followed by a
// plain one (as Postgres's sslmode=prefer). The caller closes the
// connection. A server that could not be reached, or refused the user, is
// an error naming the address.
func (c *PeerConfig) Connect(ctx context.Context) (*client.Conn, error) {
	var tlsErr error
	if !c.DisableTLS {
		conn, err := c.connect(ctx, true)
		if err == nil {
			return conn, nil
		}
		if c.RequireTLS || ctx.Err() != nil || isAuthError(err) {
			return nil, fmt.Errorf("connect to MySQL peer at %s with TLS: %w", c.Addr(), err)
		}
		tlsErr = err
	}
	conn, err := c.connect(ctx, false)
	if err != nil {
		if tlsErr != nil {
			return nil, fmt.Errorf("connect to MySQL peer at %s: %w (with TLS: %v)", c.Addr(), err, tlsErr)
		}
		return nil, fmt.Errorf("connect to MySQL peer at %s: %w", c.Addr(), err)
	}
	return conn, nil
}

// connect makes one connection attempt, with TLS or without.
func (c *PeerConfig) connect(ctx context.Context, withTLS bool) (*client.Conn, error) {
	var opts []client.Option
	if withTLS {
		tc := c.TLSOptions.Config(c.Host)
		opts = append(opts, func(conn *client.Conn) error {
			conn.SetTLSConfig(tc)
			return nil
		})
	}
	opts = append(opts, func(conn *client.Conn) error {
		conn.SetAttributes(map[string]string{"program_name": "sluice"})
		return conn.SetCharset("utf8mb4")
	})
	conn, err := client.ConnectWithContext(ctx, c.Addr(), c.User, c.Password, c.Database, connectTimeout, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Execute("SET time_zone = '+00:00', NAMES utf8mb4"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set session time zone: %w", err)
	}
	return conn, nil
}

// isAuthError reports whether err is the server refusing the user or the
// database (a plain-text retry would not help and would send the password
// in clear).
func isAuthError(err error) bool {
	var me *gomysql.MyError
	if errors.As(err, &me) {
		switch me.Code {
		case gomysql.ER_ACCESS_DENIED_ERROR, gomysql.ER_DBACCESS_DENIED_ERROR, gomysql.ER_BAD_DB_ERROR:
			return true
		}
	}
	return false
}

// ServerInfo is what Check and the mirror checks learn about a server.
type ServerInfo struct {
	// Version is the server's version string, e.g.
	// "10.11.19-MariaDB-0+deb12u1-log".
	Version string
	// Flavor is FlavorMariaDB when Version says MariaDB, else FlavorMySQL.
	Flavor string
	// Settings are the binlog settings the checks read, by variable name
	// (lower-case): log_bin, binlog_format, binlog_row_image,
	// binlog_row_metadata, gtid_mode (MySQL), expire_logs_days,
	// binlog_expire_logs_seconds; a variable the server lacks is absent.
	Settings map[string]string
	// Grants are the user's SHOW GRANTS lines.
	Grants []string
}

// detectFlavor tells MariaDB from MySQL by the version string.
func detectFlavor(version string) string {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return FlavorMariaDB
	}
	return FlavorMySQL
}

// checkedVariables are the settings ServerInfo.Settings holds.
var checkedVariables = []string{"log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "gtid_mode",
	"expire_logs_days", "binlog_expire_logs_seconds", "server_id"}

// inspect reads the server's version, binlog settings and the user's
// grants on conn.
func inspect(conn *client.Conn) (ServerInfo, error) {
	r, err := conn.Execute("SELECT VERSION()")
	if err != nil {
		return ServerInfo{}, fmt.Errorf("read server version: %w", err)
	}
	version, _ := r.GetString(0, 0)
	info := ServerInfo{Version: version, Flavor: detectFlavor(version), Settings: map[string]string{}}
	quoted := make([]string, len(checkedVariables))
	for i, v := range checkedVariables {
		quoted[i] = "'" + v + "'"
	}
	r, err = conn.Execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + strings.Join(quoted, ", ") + ")")
	if err != nil {
		return ServerInfo{}, fmt.Errorf("read server variables: %w", err)
	}
	for i := range r.RowNumber() {
		name, _ := r.GetString(i, 0)
		value, _ := r.GetString(i, 1)
		info.Settings[strings.ToLower(name)] = value
	}
	r, err = conn.Execute("SHOW GRANTS")
	if err != nil {
		return ServerInfo{}, fmt.Errorf("read the user's grants: %w", err)
	}
	for i := range r.RowNumber() {
		g, _ := r.GetString(i, 0)
		info.Grants = append(info.Grants, g)
	}
	return info, nil
}

// Kind is the MySQL kind of peer (CREATE PEER ... FROM MYSQL), for MySQL
// and MariaDB servers: a mirror's source only. Sessions cannot query such
// a peer (no federated reader, no Postgres wire): the executor answers a
// query on one with "not supported".
func Kind() connectors.Kind {
	return connectors.Kind{Type: "MYSQL", Name: "MySQL", Source: true, Destination: false,
		Parse: connectors.ParseWith(ParsePeerOptions), FormatPosition: FormatPosition}
}

var _ connectors.Peer = (*PeerConfig)(nil)

// StoredOptions implements connectors.Peer: the options as given, plus the
// defaults the peers view should show (port, replication_mechanism,
// server_id).
func (c *PeerConfig) StoredOptions(given map[string]string) map[string]string {
	out := maps.Clone(given)
	if out == nil {
		out = map[string]string{}
	}
	if _, ok := out["port"]; !ok {
		out["port"] = strconv.Itoa(c.Port)
	}
	if _, ok := out["replication_mechanism"]; !ok {
		out["replication_mechanism"] = c.Mechanism
	}
	if _, ok := out["server_id"]; !ok {
		out["server_id"] = strconv.FormatUint(uint64(c.ServerID), 10)
	}
	return out
}

// Check implements connectors.Peer: it connects, reports the server's
// version, flavor and binlog settings, and warns when the peer cannot be a
// CDC source (the reasons CanStream gives), or when flavor names the other
// kind of server than the one that answered.
func (c *PeerConfig) Check(ctx context.Context, name string) (connectors.PeerCheck, error) {
	conn, err := c.Connect(ctx)
	if err != nil {
		return connectors.PeerCheck{}, err
	}
	defer conn.Close()
	info, err := inspect(conn)
	if err != nil {
		return connectors.PeerCheck{}, err
	}
	s := info.Settings
	notices := []*sqlerr.Error{sqlerr.Notice("peer %q: %s %s, log_bin=%s, binlog_format=%s, binlog_row_image=%s, binlog_row_metadata=%s",
		name, flavorName(info.Flavor), info.Version, s["log_bin"], s["binlog_format"], s["binlog_row_image"],
		orNone(s["binlog_row_metadata"]))}
	if c.Flavor != "" && c.Flavor != info.Flavor {
		notices = append(notices, sqlerr.Warning("peer %q has flavor = '%s' but the server is %s (%s)",
			name, c.Flavor, flavorName(info.Flavor), info.Version).
			WithHint("%s", "Set flavor = '"+info.Flavor+"', or leave it out to detect it."))
	}
	notices = append(notices, retentionNotice(name, s))
	if err := canStream(info, c.Mechanism); err != nil {
		var se *sqlerr.Error
		if errors.As(err, &se) {
			notices = append(notices, sqlerr.Warning("peer %q %s", name, se.Message).
				WithHint("%s", se.Hint))
		}
	}
	return connectors.PeerCheck{Version: info.Version, Notices: notices}, nil
}

func flavorName(f string) string {
	if f == FlavorMariaDB {
		return "MariaDB"
	}
	return "MySQL"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
