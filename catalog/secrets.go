package catalog

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length in bytes of the secret key (AES-256).
const KeySize = 32

// KeyFileName is the name of the key file LoadKey keeps in the data
// directory when no key is given in the environment.
const KeyFileName = "secret.key"

// ErrKeyMismatch is returned (wrapped) by Open when the key cannot decrypt
// the key-check value stored in the catalog, i.e. the catalog was created
// with another key.
var ErrKeyMismatch = errors.New("secret key does not match this catalog (was SLUICE_SECRET_KEY or the key file changed?)")

var errBadEnvKey = errors.New("SLUICE_SECRET_KEY must be 32 bytes, hex or base64 encoded")

// LoadKey returns the 32-byte key that encrypts secrets in the catalog.
//
// env is the value of SLUICE_SECRET_KEY, passed in by the caller (LoadKey
// reads no environment). When it is non-empty it must be 64 hex digits or
// base64 (standard or URL alphabet, padded or not) decoding to exactly 32
// bytes; the error never repeats the value.
//
// When env is empty the key lives in dataDir/secret.key as base64: the file is
// created with 32 random bytes and mode 0600 when missing (dataDir is created
// with mode 0700 when missing), and refused when group or others have any
// access to it. Concurrent first calls on the same directory agree on one key.
func LoadKey(env string, dataDir string) ([]byte, error) {
	if env != "" {
		key, ok := decodeKey(env)
		if !ok {
			return nil, errBadEnvKey
		}
		return key, nil
	}
	if dataDir == "" {
		return nil, errors.New("load key: no SLUICE_SECRET_KEY and no data directory for a key file")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("load key: create data directory: %w", err)
	}
	path := filepath.Join(dataDir, KeyFileName)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKeyFile(dataDir, path); err != nil {
			return nil, err
		}
		key, err = readKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	return key, nil
}

// decodeKey accepts 64 hex digits or any base64 form of 32 bytes.
func decodeKey(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, true
		}
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, true
		}
	}
	return nil, false
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("load key: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load key: key file %s is accessible by group or others (mode %04o): run chmod 600 %s",
			path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("load key: read %s: %w", path, err)
	}
	key, ok := decodeKey(string(b))
	if !ok {
		return nil, fmt.Errorf("load key: %s must hold 32 bytes, base64 encoded", path)
	}
	return key, nil
}

// createKeyFile writes a fresh key to a temporary file and links it into
// place, so that a concurrent reader never sees a partial file and a
// concurrent creator loses cleanly (the link fails with ErrExist and the
// caller reads the winner's key).
func createKeyFile(dir, path string) error {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".secret.key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create key file: %w", err)
	}
	return nil
}

// newAEAD returns AES-256-GCM with a random 12-byte nonce prepended to each
// ciphertext. The result is safe for concurrent use.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}
