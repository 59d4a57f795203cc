// Package clickhouse is the ClickHouse connector: peer configuration,
// connections over the native protocol (github.com/ClickHouse/clickhouse-go/v2)
// and validation (peer.go); the mirrored tables (types.go, ddl.go), value
// conversion (convert.go), batch writes (write.go), metadata (meta.go) and
// the CDC applier (apply.go). docs/clickhouse.md describes the tables.
//
// It also answers client sessions' queries on a ClickHouse peer
// (connectors.FederatedReader, federated*.go): SELECT ... FROM ch.table and
// EXECUTE ch('...') run on the peer, their results mapped to Postgres types
// (federated_types.go), parameters bound into the text (federated_params.go)
// and String columns mirrored from bytea read back as bytea
// (federated_bytea.go).
//
// The oldest server it is tested with is 18.16 (Debian's package). There the
// native protocol works but the HTTP protocol does not, so connections always
// use the native one.
package clickhouse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sort"
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
	RequireTLS     bool
	DisableTLS     bool
	RootCA         string // PEM of the CA to verify the server with
	TLSHost        string // server name to verify instead of Host
	Certificate    string // PEM client certificate (with PrivateKey)
	PrivateKey     string // PEM key of Certificate
	SkipCertVerify bool
}

// OptionKeys lists every option a ClickHouse peer accepts, sorted.
var OptionKeys = []string{"certificate", "database", "disable_tls", "host", "password", "port",
	"private_key", "require_tls", "root_ca", "skip_cert_verification", "tls_host", "user"}

// notApplicable are PeerDB ClickHouse peer options Sluice refuses, with why.
var notApplicable = map[string]string{
	"s3_path":           "PeerDB stages data in S3; Sluice writes over the native protocol and needs no staging",
	"access_key_id":     "PeerDB stages data in S3; Sluice writes over the native protocol and needs no staging",
	"secret_access_key": "PeerDB stages data in S3; Sluice writes over the native protocol and needs no staging",
	"region":            "PeerDB stages data in S3; Sluice writes over the native protocol and needs no staging",
	"endpoint":          "PeerDB stages data in S3; Sluice writes over the native protocol and needs no staging",
	"cluster":           "ClickHouse clusters (ON CLUSTER tables) are not supported yet",
}

// ParsePeerOptions validates opts (keys lower-case) and returns the config.
// An unknown key, a missing host or a bad value is a *connectors.OptionError
// naming the key. Defaults: port 9000, user "default", database "default".
func ParsePeerOptions(opts map[string]string) (*PeerConfig, error) {
	known := make(map[string]bool, len(OptionKeys))
	for _, k := range OptionKeys {
		known[k] = true
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why, ok := notApplicable[k]; ok {
			return nil, &connectors.OptionError{Key: k, Unknown: true, Reason: why}
		}
		if !known[k] {
			return nil, &connectors.OptionError{Key: k, Unknown: true,
				Reason: "a CLICKHOUSE peer accepts " + strings.Join(OptionKeys, ", ")}
		}
	}
	cfg := &PeerConfig{
		Host:        strings.TrimSpace(opts["host"]),
		Port:        DefaultPort,
		User:        DefaultUser,
		Password:    opts["password"],
		Database:    DefaultDatabase,
		RootCA:      opts["root_ca"],
		TLSHost:     opts["tls_host"],
		Certificate: opts["certificate"],
		PrivateKey:  opts["private_key"],
	}
	if p, ok := opts["port"]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 65535 {
			return nil, &connectors.OptionError{Key: "port", Reason: fmt.Sprintf("%q is not a port number (1-65535)", p)}
		}
		cfg.Port = n
	}
	for key, dst := range map[string]*string{"user": &cfg.User, "database": &cfg.Database} {
		if v, ok := opts[key]; ok {
			if strings.TrimSpace(v) == "" {
				return nil, &connectors.OptionError{Key: key, Reason: "must not be empty"}
			}
			*dst = v
		}
	}
	for _, key := range []string{"require_tls", "disable_tls", "skip_cert_verification"} {
		v, ok := opts[key]
		if !ok {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, &connectors.OptionError{Key: key, Reason: fmt.Sprintf("%q is not a boolean", v)}
		}
		switch key {
		case "require_tls":
			cfg.RequireTLS = b
		case "disable_tls":
			cfg.DisableTLS = b
		default:
			cfg.SkipCertVerify = b
		}
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
	case c.RequireTLS && c.DisableTLS:
		return &connectors.OptionError{Key: "disable_tls", Reason: "conflicts with require_tls = true"}
	case (c.Certificate == "") != (c.PrivateKey == ""):
		key := "private_key"
		if c.Certificate == "" {
			key = "certificate"
		}
		return &connectors.OptionError{Key: key, Missing: true, Reason: "certificate and private_key go together"}
	}
	if c.RootCA != "" {
		if ok := x509.NewCertPool().AppendCertsFromPEM([]byte(c.RootCA)); !ok {
			return &connectors.OptionError{Key: "root_ca", Reason: "not a PEM certificate"}
		}
	}
	if c.Certificate != "" {
		if _, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.PrivateKey)); err != nil {
			return &connectors.OptionError{Key: "certificate", Reason: fmt.Sprintf("not a PEM certificate and key pair: %v", err)}
		}
	}
	return nil
}

// Addr returns host:port.
func (c *PeerConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// tlsConfig returns the TLS settings, or nil when TLS is disabled. Without
// require_tls and root_ca the certificate is not verified (as sslmode=prefer).
func (c *PeerConfig) tlsConfig() *tls.Config {
	if c.DisableTLS {
		return nil
	}
	tc := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: c.SkipCertVerify || (!c.RequireTLS && c.RootCA == "")}
	if c.TLSHost != "" {
		tc.ServerName = c.TLSHost
	}
	if c.RootCA != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(c.RootCA))
		tc.RootCAs = pool
	}
	if c.Certificate != "" {
		if pair, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.PrivateKey)); err == nil {
			tc.Certificates = []tls.Certificate{pair}
		}
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
