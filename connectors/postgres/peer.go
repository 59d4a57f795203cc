package postgres

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/sluicedb/sluice/connectors"
)

// PeerConfig is a Postgres peer's connection settings, parsed from the
// options of CREATE PEER ... FROM POSTGRES.
type PeerConfig struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
	// MetadataSchema is accepted for PeerDB compatibility (default "_sluice").
	MetadataSchema string
	// TLS: by default TLS is tried and plain text used when the server
	// answers no TLS handshake (sslmode=prefer). A Postgres peer takes no
	// client certificate.
	connectors.TLSOptions
	// tls remembers the servers that refused TLS lately (tls_memo.go):
	// the Postgres kind's, shared by the peers it parses; nil (always
	// TLS first) for a config made otherwise.
	tls *tlsMemo
}

// OptionKeys lists every option a Postgres peer accepts, sorted.
var OptionKeys = []string{"database", "disable_tls", "host", "metadata_schema", "password", "port",
	"require_tls", "root_ca", "skip_cert_verification", "tls_host", "user"}

// optionSpec declares a Postgres peer's options.
var optionSpec = connectors.OptionSpec{PeerType: "POSTGRES", Keys: OptionKeys}

// ParsePeerOptions validates opts (keys lower-case) and returns the config.
// An unknown key, a missing required key (host, user, database) or a bad
// value is an *connectors.OptionError naming the key. Default port: 5432.
func ParsePeerOptions(opts map[string]string) (*PeerConfig, error) {
	v, err := optionSpec.Parse(opts)
	if err != nil {
		return nil, err
	}
	cfg := &PeerConfig{
		Host:           v.Required("host"),
		User:           v.Required("user"),
		Database:       v.Required("database"),
		Password:       v.String("password", ""),
		MetadataSchema: v.String("metadata_schema", ""),
	}
	cfg.Port = v.Port("port", 5432)
	cfg.TLSOptions = v.TLS()
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := cfg.TLSOptions.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ConnConfig returns a pgconn config for the peer. Cancelling a context
// passed to the connection sends the server a cancel request first, so a
// cancelled statement does not cost the connection.
func (c *PeerConfig) ConnConfig(appName string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("build connection config: %w", err)
	}
	cfg.Host = c.Host
	cfg.Port = uint16(c.Port)
	cfg.User = c.User
	cfg.Password = c.Password
	cfg.Database = c.Database
	cfg.ConnectTimeout = 15 * time.Second
	cfg.Fallbacks = nil
	cfg.RuntimeParams = map[string]string{"application_name": appName}
	switch {
	case c.DisableTLS:
	case c.RequireTLS:
		cfg.TLSConfig = c.TLSOptions.Config(c.Host)
	default:
		// sslmode=prefer: TLS and plain text, in the order c.tls says.
		c.tls.order(cfg, c.TLSOptions.Config(c.Host))
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, CancelRequestDelay: 0, DeadlineDelay: 10 * time.Second}
	}
	return cfg, nil
}

// Connect opens a connection to the peer.
func (c *PeerConfig) Connect(ctx context.Context, appName string) (*pgconn.PgConn, error) {
	cfg, err := c.ConnConfig(appName)
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectFailed(net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), err)
	}
	return conn, nil
}

// ServerInfo is what validation learns about a Postgres peer.
type ServerInfo struct {
	Version     string // server_version, e.g. "15.18"
	VersionNum  int    // server_version_num, e.g. 150018
	WalLevel    string
	Replication bool // the user may replicate (rolreplication or superuser)
	Superuser   bool
}

// CanBeSource reports whether the peer can serve as a CDC source, and why not.
func (i ServerInfo) CanBeSource() (bool, string) {
	switch {
	case i.WalLevel != "logical":
		return false, fmt.Sprintf("wal_level is %s, not logical", i.WalLevel)
	case !i.Replication:
		return false, "the user lacks the REPLICATION privilege"
	case i.VersionNum < 120000:
		return false, "Postgres 12 or newer is required"
	}
	return true, ""
}

// Inspect connects to the peer and reads its version, wal_level and the
// user's privileges. It is how CREATE PEER validates a peer.
func (c *PeerConfig) Inspect(ctx context.Context) (ServerInfo, error) {
	conn, err := c.Connect(ctx, "sluice-validate")
	if err != nil {
		return ServerInfo{}, err
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int,
		current_setting('wal_level'), r.rolreplication, r.rolsuper
		FROM pg_roles r WHERE r.rolname = current_user`, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return ServerInfo{}, fmt.Errorf("inspect server: %w", res.Err)
	}
	if len(res.Rows) != 1 {
		return ServerInfo{}, fmt.Errorf("inspect server: current user not found in pg_roles")
	}
	row := res.Rows[0]
	num, _ := strconv.Atoi(string(row[1]))
	info := ServerInfo{
		Version:    strings.Fields(string(row[0]))[0],
		VersionNum: num,
		WalLevel:   string(row[2]),
		Superuser:  string(row[4]) == "t",
	}
	info.Replication = string(row[3]) == "t" || info.Superuser
	return info, nil
}
