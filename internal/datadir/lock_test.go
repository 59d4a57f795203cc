package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAcquireRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to an open file, so a second open in the same
	// process conflicts as another process would.
	_, err = Acquire(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() || inUse.Dir != dir {
		t.Fatalf("second Acquire: %v, want InUseError with pid %d and dir %s", err, os.Getpid(), dir)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	defer b.Release()
}

// NodeID is made once and read back after.
func TestNodeID(t *testing.T) {
	dir := t.TempDir()
	id, err := NodeID(dir)
	if err != nil || len(id) != 12 {
		t.Fatalf("first NodeID: %q %v", id, err)
	}
	again, err := NodeID(dir)
	if err != nil || again != id {
		t.Fatalf("second NodeID: %q %v, want %q", again, err, id)
	}
}
