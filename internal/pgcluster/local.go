package pgcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// LocalDatabase is the database the local catalog cluster serves.
const LocalDatabase = "sluice"

// StartLocal starts (creating it on first use) the private catalog cluster
// under dataDir/catalog and returns it with the URL of its database. The
// superuser password is generated once and kept in dataDir/catalog.password
// (mode 0600). The caller stops the cluster.
func StartLocal(ctx context.Context, dataDir string) (*Cluster, string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create data dir: %w", err)
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, "", fmt.Errorf("resolve data dir: %w", err)
	}
	password, err := localPassword(filepath.Join(abs, "catalog.password"))
	if err != nil {
		return nil, "", err
	}
	c, err := New(Config{
		Dir:      filepath.Join(abs, "catalog"),
		Password: password,
		LogFile:  filepath.Join(abs, "catalog.log"),
		Settings: map[string]string{"max_connections": "200"},
	})
	if err != nil {
		return nil, "", err
	}
	if !c.Initialized() {
		if err := c.Init(ctx); err != nil {
			return nil, "", err
		}
	}
	if err := c.Start(ctx); err != nil {
		return nil, "", err
	}
	if err := ensureDatabase(ctx, c.URL("postgres"), LocalDatabase); err != nil {
		_ = c.Stop()
		return nil, "", err
	}
	return c, c.URL(LocalDatabase), nil
}

func localPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if pw := strings.TrimSpace(string(b)); pw != "" {
			return pw, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read catalog password: %w", err)
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate catalog password: %w", err)
	}
	pw := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write catalog password: %w", err)
	}
	return pw, nil
}

func ensureDatabase(ctx context.Context, url, name string) error {
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to catalog cluster: %w", err)
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, "SELECT 1 FROM pg_database WHERE datname = $1", [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("look up catalog database: %w", res.Err)
	}
	if len(res.Rows) == 1 {
		return nil
	}
	if _, err := conn.Exec(ctx, `CREATE DATABASE "`+name+`"`).ReadAll(); err != nil {
		return fmt.Errorf("create catalog database: %w", err)
	}
	return nil
}
