package catalog

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// StatusSchema is the schema holding the read-only views that front-end
// sessions see: they query the catalog with search_path set to it. Its views
// never expose a secret.
const StatusSchema = "sluice_status"

// keyCheckSetting names the row of sluice.settings holding the key-check
// value: keyCheckPlaintext sealed with the catalog's key.
const (
	keyCheckSetting   = "key_check"
	keyCheckPlaintext = "sluice catalog key check v1"
)

// unlockTimeout bounds the release of the migration lock, which runs even
// when the caller's context is already done.
const unlockTimeout = 10 * time.Second

// Store is an open catalog. It is safe for concurrent use; Close releases it.
type Store struct {
	pool *pgxpool.Pool
	aead cipher.AEAD
}

// Open connects to the catalog database at url, brings its schema up to date
// and checks that key (32 bytes, see LoadKey) is the catalog's key.
//
// Starts are serialised by a session advisory lock held on a dedicated
// connection while migrating, so any number of processes may Open the same
// catalog at once. Each pending migration is applied in its own transaction;
// opening an up-to-date catalog applies nothing. Open refuses, with a
// *SchemaVersionError and without changing anything, a catalog migrated by a
// newer sluice. The first Open stores a key-check value; later Opens with
// another key fail with an error wrapping ErrKeyMismatch.
//
// The caller owns the returned Store and must Close it.
func Open(ctx context.Context, url string, key []byte) (*Store, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	ms, err := loadMigrations(embeddedMigrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	s := &Store{pool: pool, aead: aead}
	if err := s.setup(ctx, ms); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	return s, nil
}

// Pool returns the connection pool of the catalog database, for packages
// that keep their own state there. The Store owns it: do not close it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool, waiting for acquired connections to be released.
// The Store must not be used afterwards. Idempotent.
func (s *Store) Close() { s.pool.Close() }

// setup migrates and checks the key while holding the migration lock.
func (s *Store) setup(ctx context.Context, ms []migration) (err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if _, err := pc.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		// The lock may or may not be held: drop the session to be sure.
		discard(pc)
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if _, uerr := pc.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey); uerr != nil {
			discard(pc) // closing the session releases the lock
			if err == nil {
				err = fmt.Errorf("release migration lock: %w", uerr)
			}
			return
		}
		pc.Release()
	}()
	conn := pc.Conn()
	if err := migrate(ctx, conn, ms); err != nil {
		return err
	}
	return s.checkKey(ctx, conn)
}

// discard closes a pooled connection instead of returning it to the pool.
func discard(pc *pgxpool.Conn) {
	conn := pc.Hijack()
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// checkKey stores the key-check value on first use and verifies it after.
func (s *Store) checkKey(ctx context.Context, conn *pgx.Conn) error {
	var sealed []byte
	err := conn.QueryRow(ctx, `SELECT value FROM sluice.settings WHERE key = $1`, keyCheckSetting).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		sealed = s.aead.Seal(nil, nil, []byte(keyCheckPlaintext), []byte(keyCheckSetting))
		_, err = conn.Exec(ctx, `INSERT INTO sluice.settings (key, value) VALUES ($1, $2)`, keyCheckSetting, sealed)
		if err != nil {
			return fmt.Errorf("store key check: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read key check: %w", err)
	}
	plain, err := s.aead.Open(nil, nil, sealed, []byte(keyCheckSetting))
	if err != nil || string(plain) != keyCheckPlaintext {
		return ErrKeyMismatch
	}
	return nil
}
