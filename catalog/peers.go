package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound is wrapped by GetPeer and DropPeer when no peer has the name.
var ErrNotFound = errors.New("peer does not exist")

// ErrExists is wrapped by CreatePeer when a peer already has the name.
var ErrExists = errors.New("peer already exists")

// Peer is a database sluice reads from or writes to, as stored in the
// catalog.
type Peer struct {
	Name string
	// Type is the peer's kind: POSTGRES, CLICKHOUSE, MYSQL, SNOWFLAKE or
	// BIGQUERY. The catalog stores it as given; the caller validates it.
	Type string
	// Options are all the peer's options in clear, secrets included. They
	// are encrypted as a whole at rest and never appear in a status view.
	Options map[string]string
	// CreatedAt is set by the catalog when the peer is created; CreatePeer
	// ignores it.
	CreatedAt time.Time
}

// CreatePeer stores p with its options encrypted, and the non-secret display
// columns of the status view (host, port, database, user) derived from them.
// It fails with an error wrapping ErrExists when the name is taken. Not
// idempotent.
func (s *Store) CreatePeer(ctx context.Context, p Peer) error {
	if p.Name == "" {
		return errors.New("create peer: name is empty")
	}
	if p.Type == "" {
		return fmt.Errorf("create peer %q: type is empty", p.Name)
	}
	opts := p.Options
	if opts == nil {
		opts = map[string]string{}
	}
	plain, err := json.Marshal(opts)
	if err != nil {
		return fmt.Errorf("create peer %q: encode options: %w", p.Name, err)
	}
	sealed := s.aead.Seal(nil, nil, plain, peerAAD(p.Name))
	d := displayColumns(p.Type, opts)
	_, err = s.pool.Exec(ctx, `
INSERT INTO sluice.peers (name, type, host, port, database, username, options_sealed)
VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.Name, p.Type, d.host, d.port, d.database, d.user, sealed)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
		return fmt.Errorf("create peer %q: %w", p.Name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create peer %q: %w", p.Name, err)
	}
	return nil
}

// GetPeer returns the peer named name with its options decrypted. It fails
// with an error wrapping ErrNotFound when there is none.
func (s *Store) GetPeer(ctx context.Context, name string) (Peer, error) {
	rows, err := s.pool.Query(ctx, `
SELECT name, type, options_sealed, created_at FROM sluice.peers WHERE name = $1`, name)
	if err != nil {
		return Peer{}, fmt.Errorf("get peer %q: %w", name, err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, s.scanPeer)
	if errors.Is(err, pgx.ErrNoRows) {
		return Peer{}, fmt.Errorf("get peer %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Peer{}, fmt.Errorf("get peer %q: %w", name, err)
	}
	return p, nil
}

// ListPeers returns every peer with its options decrypted, ordered by name
// (byte order).
func (s *Store) ListPeers(ctx context.Context) ([]Peer, error) {
	rows, err := s.pool.Query(ctx, `
SELECT name, type, options_sealed, created_at FROM sluice.peers ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	peers, err := pgx.CollectRows(rows, s.scanPeer)
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	return peers, nil
}

// ErrInUse is wrapped by DropPeer when a mirror still uses the peer.
var ErrInUse = errors.New("peer is used by a mirror")

// DropPeer deletes the peer named name. It fails with an error wrapping
// ErrNotFound when there is none (so it is not idempotent), and with one
// wrapping ErrInUse while a mirror uses it.
func (s *Store) DropPeer(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sluice.peers WHERE name = $1`, name)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation {
		return fmt.Errorf("drop peer %q: %w", name, ErrInUse)
	}
	if err != nil {
		return fmt.Errorf("drop peer %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("drop peer %q: %w", name, ErrNotFound)
	}
	return nil
}

func (s *Store) scanPeer(row pgx.CollectableRow) (Peer, error) {
	var (
		p      Peer
		sealed []byte
	)
	if err := row.Scan(&p.Name, &p.Type, &sealed, &p.CreatedAt); err != nil {
		return Peer{}, err
	}
	plain, err := s.aead.Open(nil, nil, sealed, peerAAD(p.Name))
	if err != nil {
		return Peer{}, fmt.Errorf("decrypt options of peer %q: %w", p.Name, err)
	}
	if err := json.Unmarshal(plain, &p.Options); err != nil {
		return Peer{}, fmt.Errorf("decode options of peer %q: %w", p.Name, err)
	}
	if p.Options == nil {
		p.Options = map[string]string{}
	}
	return p, nil
}

// peerAAD binds sealed options to their peer, so that options copied onto
// another row fail to decrypt instead of silently changing that peer.
func peerAAD(name string) []byte { return []byte("peer:" + name) }

// display holds the non-secret columns shown in sluice_status.peers; nil
// means NULL.
type display struct {
	host, port, database, user *string
}

func displayColumns(typ string, opts map[string]string) display {
	hostKey, dbKey := "host", "database"
	switch typ {
	case "SNOWFLAKE":
		hostKey = "account_id"
	case "BIGQUERY":
		hostKey, dbKey = "project_id", "dataset_id"
	}
	return display{
		host:     firstOption(opts, hostKey),
		port:     firstOption(opts, "port"),
		database: firstOption(opts, dbKey),
		user:     firstOption(opts, "user", "username", "client_email"),
	}
}

// firstOption returns the first non-empty value among keys, or nil.
func firstOption(opts map[string]string, keys ...string) *string {
	for _, k := range keys {
		if v := opts[k]; v != "" {
			return &v
		}
	}
	return nil
}
