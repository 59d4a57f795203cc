package datadir

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// NodeIDFile is the file inside the data directory that keeps the node's
// id (docs/cluster.md).
const NodeIDFile = "node-id"

// NodeID returns the node id kept in dir, making a random one (12
// hexadecimal digits) the first time: a Sluice restarted on the same data
// directory is the same node, and takes its own streams back at once.
// The caller holds dir's lock (Acquire), so no other process races it.
func NodeID(dir string) (string, error) {
	path := filepath.Join(dir, NodeIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := string(bytes.TrimSpace(b))
		if id == "" {
			return "", fmt.Errorf("node id file %s is empty: remove it to make a new id", path)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read node id: %w", err)
	}
	raw := make([]byte, 6)
	_, _ = rand.Read(raw)
	id := hex.EncodeToString(raw)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}
