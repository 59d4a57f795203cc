package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/sluicedb/sluice/executor"
)

// phase measures one part of the run of Sluice, which runs in this
// process: its peak resident memory (the kernel's high-water mark, reset
// when the phase starts) and, with -profile, a CPU profile and allocation
// profiles written to the profile directory as <name>.cpu.pprof and
// <name>.allocs.pprof. An allocation profile counts from the start of the
// process, so the phase's own allocations are its difference with
// <name>.allocs-start.pprof, written as the phase starts:
// go tool pprof -base dir/<name>.allocs-start.pprof dir/<name>.allocs.pprof.
type phase struct {
	name    string
	dir     string
	cpuFile *os.File
	peak    int64 // the peak RSS, once stopped (0: unknown)
}

// startPhase starts measuring phase name; dir is the profile directory
// ("" for none).
func startPhase(name, dir string) (*phase, error) {
	p := &phase{name: name, dir: dir}
	// Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current
	// RSS (Linux 4.0 and later).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	if dir == "" {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeAllocs(filepath.Join(dir, name+".allocs-start.pprof")); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	p.cpuFile = f
	return p, nil
}

// stop ends the phase and returns its peak RSS line for the report.
func (p *phase) stop() (string, error) {
	if p.cpuFile != nil {
		pprof.StopCPUProfile()
		if err := p.cpuFile.Close(); err != nil {
			return "", err
		}
		if err := writeAllocs(filepath.Join(p.dir, p.name+".allocs.pprof")); err != nil {
			return "", err
		}
	}
	peak, err := peakRSS()
	if err != nil {
		return "peak RSS:                       unknown (" + err.Error() + ")", nil
	}
	p.peak = peak
	return fmt.Sprintf("peak RSS (sluice + bench):      %7.0f MB", float64(peak)/(1<<20)), nil
}

// peakRSS returns the process's peak resident memory since the last reset,
// in bytes (VmHWM in /proc/self/status).
func peakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmHWM %q: %w", rest, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// writeAllocs writes the allocation profile so far to path.
func writeAllocs(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = pprof.Lookup("allocs").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// setMemoryLimit gives the process, in which Sluice runs, the soft memory
// limit `sluice serve` sets by default (executor.DefaultMemoryLimit), unless
// GOMEMLIMIT set one; the peak RSS figures are under it.
func setMemoryLimit() {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		fmt.Printf("memory limit: GOMEMLIMIT=%s\n", v)
		return
	}
	debug.SetMemoryLimit(executor.DefaultMemoryLimit)
	fmt.Printf("memory limit: %d MiB (sluice serve's default --memory-limit)\n", executor.DefaultMemoryLimit>>20)
}
