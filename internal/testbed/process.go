package testbed

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// serverProc is a throwaway server's process and temporary directory, as
// the ClickHouse and MariaDB test servers run them: a process group of
// its own, killed with the directory removed when the test is done.
type serverProc struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	once sync.Once
}

// newServerProc returns the process of a server in dir, not started.
func newServerProc(dir string) serverProc {
	return serverProc{dir: dir, done: make(chan struct{})}
}

// start starts cmd as the server's process; when it exits, exited (if
// not nil) runs and done is closed.
func (p *serverProc) start(cmd *exec.Cmd, exited func()) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	go func() {
		_ = cmd.Wait()
		if exited != nil {
			exited()
		}
		close(p.done)
	}()
	return nil
}

// stop kills the server's process group and removes its directory (kept
// when SLUICE_KEEP_TEST_CLUSTERS is set). Idempotent.
func (p *serverProc) stop() {
	p.once.Do(func() {
		if p.cmd != nil && p.cmd.Process != nil {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if os.Getenv("SLUICE_KEEP_TEST_CLUSTERS") == "" {
			os.RemoveAll(p.dir)
		}
	})
}

// Done is closed when the server process has exited.
func (p *serverProc) Done() <-chan struct{} { return p.done }

// Host returns the address the server listens on (127.0.0.1).
func (p *serverProc) Host() string { return "127.0.0.1" }

// Dir returns the server's temporary directory.
func (p *serverProc) Dir() string { return p.dir }
