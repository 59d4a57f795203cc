package clickhouse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Defaults of a ClickHouse peer.
const (
	DefaultPort     = 9000
	DefaultUser     = "default"
	DefaultDatabase = "default"
)

// dialTimeout bounds connecting (TCP and TLS handshake) to the server.
const dialTimeout = 15 * time.Second

// PeerConfig is a ClickHouse peer's connection settings, parsed from the
// options of CREATE PEER ... FROM CLICKHOUSE. A PeerConfig is a value: it
// holds no connection and is safe for concurrent use once built.
type PeerConfig struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
	// TLS: by default TLS is tried and plain text used when the server
	// answers no TLS handshake (as Postgres' sslmode=prefer).
	connectors.TLSOptions
}

// OptionKeys lists every option a ClickHouse peer accepts, sorted.
var OptionKeys = []string{"certificate", "database", "disable_tls", "host", "password", "port",
	"private_key", "require_tls", "root_ca", "skip_cert_verification", "tls_host", "user"}

// s3Staging is why PeerDB's S3 staging options do not apply.
const s3Staging = "PeerDB stages data in S3; Sluice writes over the native protocol and needs no staging"

// optionSpec declares a ClickHouse peer's options; the PeerDB ones Sluice
// refuses say why.
var optionSpec = connectors.OptionSpec{PeerType: "CLICKHOUSE", Keys: OptionKeys, Refused: map[string]string{
	"s3_path":           s3Staging,
	"access_key_id":     s3Staging,
	"secret_access_key": s3Staging,
	"region":            s3Staging,
	"endpoint":          s3Staging,
	"cluster":           "ClickHouse clusters (ON CLUSTER tables) are not supported yet",
}}

// ParsePeerOptions validates opts (keys lower-case) and returns the config.
// An unknown key, a missing host or a bad value is a *connectors.OptionError
// naming the key. Defaults: port 9000, user "default", database "default".
func ParsePeerOptions(opts map[string]string) (*PeerConfig, error) {
	v, err := optionSpec.Parse(opts)
	if err != nil {
		return nil, err
	}
	cfg := &PeerConfig{
		Host:     strings.TrimSpace(v.String("host", "")),
		Port:     v.Port("port", DefaultPort),
		Password: v.String("password", ""),
	}
	cfg.User = v.NonEmpty("user", DefaultUser)
	cfg.Database = v.NonEmpty("database", DefaultDatabase)
	cfg.TLSOptions = v.TLS()
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate reports a config that cannot work, as a *connectors.OptionError.
func (c *PeerConfig) Validate() error {
	switch {
	case c.Host == "":
		return &connectors.OptionError{Key: "host", Missing: true}
	case c.Port < 1 || c.Port > 65535:
		return &connectors.OptionError{Key: "port", Reason: fmt.Sprintf("%d is not a port number (1-65535)", c.Port)}
	case c.User == "":
		return &connectors.OptionError{Key: "user", Reason: "must not be empty"}
	case c.Database == "":
		return &connectors.OptionError{Key: "database", Reason: "must not be empty"}
	}
	return c.TLSOptions.Validate()
}

// Addr returns host:port.
func (c *PeerConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// tlsConfig returns the TLS settings, or nil when TLS is disabled. Without
// require_tls and root_ca the certificate is not verified (as sslmode=prefer).
func (c *PeerConfig) tlsConfig() *tls.Config {
	tc := c.TLSOptions.Config(c.Host)
	if tc != nil {
		tc.MinVersion = tls.VersionTLS12
	}
	return tc
}

func (c *PeerConfig) options(database string, tc *tls.Config) *clickhouse.Options {
	return &clickhouse.Options{
		Protocol:    clickhouse.Native,
		Addr:        []string{c.Addr()},
		Auth:        clickhouse.Auth{Username: c.User, Password: c.Password, Database: database},
		TLS:         tc,
		DialTimeout: dialTimeout,
		ClientInfo:  clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{Name: "sluice"}}},
	}
}

// Open connects to the peer's database and pings it. The result is a pool
// (safe for concurrent use) that the caller closes. Unless TLS is required or
// disabled, TLS is tried first and plain text used when the server does not
// speak TLS on that port.
func (c *PeerConfig) Open(ctx context.Context) (driver.Conn, error) {
	return c.open(ctx, c.Database)
}

func (c *PeerConfig) open(ctx context.Context, database string) (driver.Conn, error) {
	return openProbed(ctx, c.Addr(), func(ctx context.Context) (driver.Conn, error) { return c.openAttempts(ctx, database) })
}

// openAttempts connects with TLS, then without (see Open).
func (c *PeerConfig) openAttempts(ctx context.Context, database string) (driver.Conn, error) {
	tc := c.tlsConfig()
	conn, err := dial(ctx, c.options(database, tc))
	if err == nil || tc == nil || c.RequireTLS || ctx.Err() != nil || isServerError(err) {
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", c.Addr(), err)
		}
		return conn, nil
	}
	// The TLS attempt failed before the server answered: try plain text.
	conn, err = dial(ctx, c.options(database, nil))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.Addr(), err)
	}
	return conn, nil
}

func dial(ctx context.Context, opts *clickhouse.Options) (driver.Conn, error) {
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, err
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// isServerError reports whether err is an exception sent by the server (it
// was reached and refused, e.g. a wrong password or unknown database).
func isServerError(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex)
}

// errUnknownDatabase is ClickHouse's UNKNOWN_DATABASE error code.
const errUnknownDatabase = 81

// ServerInfo is what validation learns about a ClickHouse peer.
type ServerInfo struct {
	Version        string // version(), e.g. "18.16.1"
	Major, Minor   int    // parsed from Version
	DatabaseExists bool
}

// AtLeast reports whether the server's version is major.minor or newer.
func (i ServerInfo) AtLeast(major, minor int) bool {
	return i.Major > major || (i.Major == major && i.Minor >= minor)
}

// Inspect connects to the peer and reads the server's version and whether
// the peer's database exists. A missing database is not an error here
// (DatabaseExists is false); a server that cannot be reached, or refuses
// the user, is. It is how CREATE PEER validates a peer.
func (c *PeerConfig) Inspect(ctx context.Context) (ServerInfo, error) {
	info := ServerInfo{DatabaseExists: true}
	conn, err := c.open(ctx, c.Database)
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && ex.Code == errUnknownDatabase {
		info.DatabaseExists = false
		// Reach the server without a database to learn its version.
		conn, err = c.open(ctx, "")
	}
	if err != nil {
		return ServerInfo{}, err
	}
	defer conn.Close()
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&info.Version); err != nil {
		return ServerInfo{}, fmt.Errorf("inspect server: %w", err)
	}
	parts := strings.SplitN(info.Version, ".", 3)
	info.Major, _ = strconv.Atoi(parts[0])
	if len(parts) > 1 {
		info.Minor, _ = strconv.Atoi(parts[1])
	}
	return info, nil
}
