package connectors

import "github.com/jackc/pgx/v5/pgconn"

// ConnectFailure is a connector's error for a peer it could not reach,
// with what the client's error carries besides its message.
type ConnectFailure interface {
	error
	// ServerCode is the SQLSTATE the server sent when it refused the
	// connection (28P01 for a wrong password, 3D000 for a missing
	// database, ...), or "" when no server answered so.
	ServerCode() string
	// OtherAttempts are the errors of the connection attempts the message
	// does not lead with (e.g. TLS, then plain text), in order.
	OtherAttempts() []string
}

// WireDialer is the ability of a kind whose peers speak Postgres' protocol:
// client sessions reach such a peer on connections of their own and relay
// their statements (Postgres peers). Safe for concurrent use.
type WireDialer interface {
	// ConnConfig returns the settings for connecting to a peer with the
	// stored options, as application appName; a bad option is an
	// *OptionError. The caller owns the config and may change it.
	ConnConfig(options map[string]string, appName string) (*pgconn.Config, error)
	// ConnectFailed turns pgconn's error connecting with cfg into the
	// connector's error, a ConnectFailure; a context error is returned as
	// it is.
	ConnectFailed(cfg *pgconn.Config, err error) error
}
