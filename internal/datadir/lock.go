// Package datadir keeps one Sluice at a time on a data directory: the first
// holds an exclusive lock (flock) on DIR/sluice.pid, which records its pid;
// another gets an InUseError naming that pid. The kernel drops the lock when
// its holder exits, however it exits, so a crash leaves no stale lock.
package datadir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// PIDFile is the lock file's name inside the data directory.
const PIDFile = "sluice.pid"

// InUseError says another process holds the data directory.
type InUseError struct {
	// Dir is the data directory, absolute.
	Dir string
	// PID is the holder's process id, 0 when it has not written it yet.
	PID int
}

// Error says which Sluice holds which directory.
func (e *InUseError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("another Sluice is using data dir %s", e.Dir)
	}
	return fmt.Sprintf("another Sluice (pid %d) is using data dir %s", e.PID, e.Dir)
}

// Lock is a held data directory.
type Lock struct {
	f *os.File
}

// Acquire creates dir when missing (mode 0700) and locks it for this
// process, or returns an *InUseError when another process holds it. The
// caller releases the lock with Release.
func Acquire(dir string) (*Lock, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(abs, PIDFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Dir: abs, PID: holder(path)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// holder reads the pid the lock's holder wrote, waiting briefly for a holder
// that has just taken the lock; 0 when none appears.
func holder(path string) int {
	for i := 0; i < 10; i++ {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		if pid, err := strconv.Atoi(string(bytes.TrimSpace(b))); err == nil && pid > 0 {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}

// Release empties the pid file and drops the lock. Nil-safe.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close()
	l.f = nil
	return err
}
