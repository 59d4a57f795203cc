package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sluicedb/sluice/internal/testbed"
)

// The CPU time a measured step costs, besides its wall time. On a machine
// that others share, wall times vary with their load (a copy that takes
// 3 s alone took 8 to 11 s while a test suite ran), and a step of more
// processes gets a larger share of a busy CPU; the CPU time the servers
// and this process spend on the step varies much less, and says whether
// Sluice does the same work for less.

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's
// times: 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTimes is CPU time spent so far, in seconds: by the clusters' server
// processes (the postmasters with the backends they reaped, and the live
// backends), and by this process (Sluice and the bench) with the children
// it waited for (the pipe's psql).
type cpuTimes struct {
	servers, self float64
	// each is servers by cluster, in the order cpuNow was given them.
	each []float64
}

// sub returns t - u.
func (t cpuTimes) sub(u cpuTimes) cpuTimes {
	d := cpuTimes{servers: t.servers - u.servers, self: t.self - u.self, each: make([]float64, len(t.each))}
	for i := range t.each {
		d.each[i] = t.each[i] - u.each[i]
	}
	return d
}

// String renders t for the report.
func (t cpuTimes) String() string {
	each := make([]string, len(t.each))
	for i, s := range t.each {
		each[i] = fmt.Sprintf("%.2f", s)
	}
	return fmt.Sprintf("CPU %5.2f s (servers %5.2f: %s; bench process %5.2f)", t.servers+t.self, t.servers,
		strings.Join(each, " + "), t.self)
}

// cpuNow reads the CPU time spent so far by clusters and by this process.
func cpuNow(clusters ...*testbed.Cluster) (cpuTimes, error) {
	var t cpuTimes
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			return t, err
		}
		t.self += tv(ru.Utime) + tv(ru.Stime)
	}
	// masters maps each postmaster's PID to its cluster's index + 1.
	masters := make(map[int]int, len(clusters))
	t.each = make([]float64, len(clusters))
	for i, c := range clusters {
		pid, err := postmasterPID(c)
		if err != nil {
			return t, err
		}
		masters[pid] = i + 1
	}
	procs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return t, err
	}
	for _, p := range procs {
		pid, ppid, ticks, err := procTicks(p)
		if err != nil {
			continue // gone meanwhile
		}
		switch {
		case masters[pid] > 0:
			t.each[masters[pid]-1] += ticks.own + ticks.reaped
		case masters[ppid] > 0:
			t.each[masters[ppid]-1] += ticks.own
		}
	}
	for _, s := range t.each {
		t.servers += s
	}
	return t, nil
}

func tv(v syscall.Timeval) float64 { return float64(v.Sec) + float64(v.Usec)/1e6 }

// postmasterPID reads the server's process ID from postmaster.pid.
func postmasterPID(c *testbed.Cluster) (int, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir(), "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// ticks are a process's CPU times in seconds: its own (utime + stime), and
// those of the children it waited for (cutime + cstime).
type ticks struct{ own, reaped float64 }

// procTicks parses /proc/<pid>/stat.
func procTicks(path string) (pid, ppid int, t ticks, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, t, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, 0, t, fmt.Errorf("%s: no command name", path)
	}
	if pid, err = strconv.Atoi(strings.TrimSpace(s[:open])); err != nil {
		return 0, 0, t, err
	}
	// After the name: state (3), ppid (4), ..., utime (14), stime (15),
	// cutime (16), cstime (17).
	f := strings.Fields(s[end+1:])
	if len(f) < 15 {
		return 0, 0, t, fmt.Errorf("%s: %d fields", path, len(f))
	}
	n := make([]float64, 4)
	for i := range n {
		v, err := strconv.ParseInt(f[11+i], 10, 64)
		if err != nil {
			return 0, 0, t, err
		}
		n[i] = float64(v) / clockTicks
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, t, err
	}
	return pid, ppid, ticks{own: n[0] + n[1], reaped: n[2] + n[3]}, nil
}
