package catalog

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// readerPasswordSetting names the row of sluice.settings holding the reader
// role's current password, sealed with the catalog's key, so that every
// process sharing the catalog can learn the password the last Open set.
const readerPasswordSetting = "reader_password"

// unlockTimeout bounds the release of the migration lock, which runs even
// when the caller's context is already done.
const unlockTimeout = 10 * time.Second

// Store is an open catalog. It is safe for concurrent use; Close releases it.
type Store struct {
	pool *pgxpool.Pool
	aead cipher.AEAD
	url  string // as given to Open

	mu        sync.Mutex
	readerURL string // the URL front-end sessions connect with
	isolated  bool   // readerURL logs in as the unprivileged reader role
}

// Open connects to the catalog database at url, brings its schema up to date
// and checks that key (32 bytes, see LoadKey) is the catalog's key.
//
// When the catalog's user may create roles, Open then makes sure the reader
// role exists and is unprivileged, and gives it a fresh random password
// (see ReaderURL).
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
	s := &Store{pool: pool, aead: aead, url: url, readerURL: url}
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
	if err := s.checkKey(ctx, conn); err != nil {
		return err
	}
	// After the migrations, so that views they added are granted too.
	return s.setupReader(ctx, conn)
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

// ReaderURL returns the URL front-end sessions use to query the catalog: it
// logs in as the reader role (see ReaderIsolated) when Open could set that
// role up, and is the URL given to Open otherwise. Safe for concurrent use.
func (s *Store) ReaderURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readerURL
}

// ReaderIsolated reports whether ReaderURL logs in as the reader role: a
// LOGIN role named sluice_reader_ followed by the first 10 hex digits of
// md5(current_database()), which may only read the status views (USAGE on
// schema sluice_status and SELECT on its views, which read the internal
// tables with their owner's rights), has default_transaction_read_only on
// and search_path sluice_status, and holds no other privilege, attribute or
// role membership. It is false when the catalog's user may not create roles:
// sessions then use the catalog's own user, and the caller should say so.
func (s *Store) ReaderIsolated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isolated
}

// RefreshReaderURL re-reads the reader role's password, which another
// process sharing the catalog may have changed by opening it since, and
// returns the new ReaderURL. Without a reader role it returns ReaderURL
// unchanged. Safe for concurrent use.
func (s *Store) RefreshReaderURL(ctx context.Context) (string, error) {
	s.mu.Lock()
	isolated := s.isolated
	s.mu.Unlock()
	if !isolated {
		return s.ReaderURL(), nil
	}
	var (
		role   string
		sealed []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT 'sluice_reader_' || left(md5(current_database()), 10),
       (SELECT value FROM sluice.settings WHERE key = $1)`, readerPasswordSetting).Scan(&role, &sealed)
	if err != nil {
		return "", fmt.Errorf("refresh reader password: %w", err)
	}
	plain, err := s.aead.Open(nil, nil, sealed, []byte(readerPasswordSetting))
	if err != nil {
		return "", fmt.Errorf("refresh reader password: cannot decrypt it: %w", err)
	}
	u, err := urlWithUser(s.url, role, string(plain))
	if err != nil {
		return "", fmt.Errorf("refresh reader password: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readerURL = u
	return u, nil
}

// errNotIsolated means the reader role could not be made unprivileged (it
// keeps an attribute or a membership the catalog's user cannot take away).
var errNotIsolated = errors.New("the reader role could not be made unprivileged")

// setupReader creates or repairs the reader role and sets its password, in
// one transaction. When the catalog's user cannot create roles, or lacks a
// privilege for some step, nothing changes and sessions use the catalog's own
// URL; other failures (a lost connection) are returned.
func (s *Store) setupReader(ctx context.Context, conn *pgx.Conn) error {
	var (
		role            string
		super, canRoles bool
	)
	err := conn.QueryRow(ctx, `
SELECT 'sluice_reader_' || left(md5(current_database()), 10), rolsuper, rolsuper OR rolcreaterole
FROM pg_roles WHERE rolname = current_user`).Scan(&role, &super, &canRoles)
	if err != nil {
		return fmt.Errorf("check the catalog user's privileges: %w", err)
	}
	if !canRoles {
		return nil
	}
	password := make([]byte, 32)
	_, _ = rand.Read(password)
	pw := hex.EncodeToString(password)
	verifier, err := scramVerifier(pw)
	if err != nil {
		return fmt.Errorf("set up reader role: %w", err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := configureReader(ctx, tx, role, verifier, super); err != nil {
			return err
		}
		sealed := s.aead.Seal(nil, nil, []byte(pw), []byte(readerPasswordSetting))
		_, err := tx.Exec(ctx, `
INSERT INTO sluice.settings (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`, readerPasswordSetting, sealed)
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) || errors.Is(err, errNotIsolated) {
		return nil // not allowed: sessions use the catalog's own user
	}
	if err != nil {
		return fmt.Errorf("set up reader role %s: %w", role, err)
	}
	u, err := urlWithUser(s.url, role, pw)
	if err != nil {
		return fmt.Errorf("set up reader role %s: %w", role, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readerURL, s.isolated = u, true
	return nil
}

// configureReader makes role exist, unprivileged, with password verifier,
// able to read sluice_status and nothing else.
func configureReader(ctx context.Context, tx pgx.Tx, role, verifier string, super bool) error {
	r := pgx.Identifier{role}.Sanitize()
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return err
	}
	attrs := "LOGIN"
	if super {
		attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
	}
	verb := "ALTER"
	if !exists {
		verb = "CREATE"
	}
	stmts := []string{
		// A verifier, not the password, so that statement logs never hold it.
		fmt.Sprintf("%s ROLE %s WITH %s PASSWORD '%s' VALID UNTIL 'infinity'", verb, r, attrs, verifier),
		fmt.Sprintf("ALTER ROLE %s SET default_transaction_read_only = on", r),
		fmt.Sprintf("ALTER ROLE %s SET search_path = %s", r, StatusSchema),
	}
	// Take back anything it was given, then grant what it needs.
	rows, err := tx.Query(ctx, `
SELECT quote_ident(nspname) FROM pg_namespace WHERE nspname IN ('sluice', 'public', $1) ORDER BY nspname`, StatusSchema)
	if err != nil {
		return err
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, sch := range schemas {
		stmts = append(stmts,
			fmt.Sprintf("REVOKE ALL ON SCHEMA %s FROM %s", sch, r),
			fmt.Sprintf("REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %s", sch, r),
			fmt.Sprintf("REVOKE ALL ON ALL SEQUENCES IN SCHEMA %s FROM %s", sch, r),
			fmt.Sprintf("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %s FROM %s", sch, r))
	}
	rows, err = tx.Query(ctx, `
SELECT m.roleid::regrole::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1`, role)
	if err != nil {
		return err
	}
	memberOf, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, m := range memberOf {
		stmts = append(stmts, fmt.Sprintf("REVOKE %s FROM %s", m, r))
	}
	stmts = append(stmts,
		fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", StatusSchema, r),
		fmt.Sprintf("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s", StatusSchema, r))
	for _, sql := range stmts {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
	}
	var connect bool
	if err := tx.QueryRow(ctx, `SELECT has_database_privilege($1, current_database(), 'CONNECT')`, role).Scan(&connect); err != nil {
		return err
	}
	if !connect {
		var db string
		if err := tx.QueryRow(ctx, `SELECT quote_ident(current_database())`).Scan(&db); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", db, r)); err != nil {
			return err
		}
	}
	var clean bool
	err = tx.QueryRow(ctx, `
SELECT rolcanlogin AND NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)
       AND NOT EXISTS (SELECT FROM pg_auth_members WHERE member = r.oid)
FROM pg_roles r WHERE rolname = $1`, role).Scan(&clean)
	if err != nil {
		return err
	}
	if !clean {
		return errNotIsolated
	}
	return nil
}

// scramVerifier returns the SCRAM-SHA-256 verifier Postgres stores for
// password (RFC 5802, RFC 7677; 4096 iterations as Postgres uses). password
// must be ASCII, which needs no SASLprep.
func scramVerifier(password string) (string, error) {
	const iterations = 4096
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(server)), nil
}

// urlWithUser returns the connection string base (a URL or key=value
// settings) logging in as user with password instead.
func urlWithUser(base, user, password string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse catalog URL: %w", err)
		}
		u.User = url.UserPassword(user, password)
		q := u.Query()
		q.Del("user")
		q.Del("password")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// key=value settings: a later key overrides an earlier one.
	quote := func(v string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	return strings.TrimSpace(base) + " user=" + quote(user) + " password=" + quote(password), nil
}
