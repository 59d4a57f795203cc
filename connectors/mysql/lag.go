package mysql

import (
	"context"
	"fmt"

	"github.com/sluicedb/sluice/connectors"
)

// A MySQL server keeps nothing per replica: its binlogs go by its retention
// (binlog_expire_logs_seconds, expire_logs_days), whoever still needs
// them. So the stream's health and lag are measured from where the mirror
// resumes (StreamSpec.From) against the binlogs the server still has.

var _ connectors.LagReporter = (*Source)(nil)

// binlogFile is a binlog file the server keeps, and its size.
type binlogFile struct {
	name string
	size uint64
}

// binlogs lists the server's binlog files, oldest first (SHOW BINARY LOGS,
// which needs REPLICATION CLIENT, as CanStream checks).
func (s *Source) binlogs() ([]binlogFile, error) {
	r, err := s.conn.Execute("SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("list binlogs: %w", err)
	}
	files := make([]binlogFile, 0, r.RowNumber())
	for i := range r.RowNumber() {
		name, _ := r.GetString(i, 0)
		size, _ := r.GetUint(i, 1)
		files = append(files, binlogFile{name: name, size: size})
	}
	return files, nil
}

// behind returns how many bytes of binlog files follow p: the rest of p's
// file and every later file; kept is false when the server no longer has
// p's file (or never had it).
func behind(files []binlogFile, p BinlogPos) (bytes int64, kept bool) {
	var n uint64
	for _, f := range files {
		switch {
		case f.name == p.File:
			kept = true
			if f.size > p.Offset {
				n += f.size - p.Offset
			}
		case kept:
			n += f.size
		}
	}
	return int64(n), kept
}

// CheckStream implements connectors.Source: the stream of spec can resume
// while the server keeps the binlog file of spec.From; when it does not,
// the error wraps connectors.ErrStreamLost. Nothing is checked without a
// position.
func (s *Source) CheckStream(_ context.Context, spec connectors.StreamSpec) error {
	if spec.From == "" {
		return nil
	}
	p, err := DecodePosition(spec.From)
	if err != nil {
		return err
	}
	files, err := s.binlogs()
	if err != nil {
		return err
	}
	if _, kept := behind(files, p); !kept {
		oldest := "none"
		if len(files) > 0 {
			oldest = files[0].name
		}
		return fmt.Errorf("%w: the server no longer keeps binlog %s, where mirror %q resumes (its oldest is %s); only a resync recovers",
			connectors.ErrStreamLost, p.File, spec.Mirror, oldest)
	}
	return nil
}

// StreamLags implements connectors.LagReporter: the bytes of binlog after
// each spec's From (nil without one), Lost when the server no longer keeps
// its file, a Warning when its file is the oldest the server keeps (and
// not the one it writes), and Active when a replica with the mirror's
// server id is connected (see replicas). Neither a status nor a safe size applies:
// retention is by time.
func (s *Source) StreamLags(_ context.Context, specs []connectors.StreamSpec) (map[string]connectors.StreamLag, error) {
	files, err := s.binlogs()
	if err != nil {
		return nil, err
	}
	replicas := s.replicas()
	out := make(map[string]connectors.StreamLag, len(specs))
	for _, spec := range specs {
		var active *bool
		if replicas != nil {
			a := replicas[mirrorServerID(s.peer.ServerID, spec.Mirror)]
			active = &a
		}
		if spec.From == "" {
			out[spec.Mirror] = connectors.StreamLag{Active: active}
			continue
		}
		p, err := DecodePosition(spec.From)
		if err != nil {
			out[spec.Mirror] = connectors.StreamLag{Active: active}
			continue
		}
		n, kept := behind(files, p)
		if !kept {
			out[spec.Mirror] = connectors.StreamLag{Lost: true, Active: active}
			continue
		}
		l := connectors.StreamLag{Bytes: &n, Active: active}
		if len(files) > 1 && files[0].name == p.File {
			// The next purge (the server's retention, or PURGE BINARY
			// LOGS) takes the file the mirror resumes from.
			l.Warning = fmt.Sprintf("binlog %s, where mirror %q resumes, is the oldest the server keeps: "+
				"the server's binlog retention purges it next, and the mirror is lost unless it catches up first (%d bytes behind)",
				p.File, spec.Mirror, n)
		}
		out[spec.Mirror] = l
	}
	return out, nil
}

// replicas returns the server ids of the replicas connected to the server
// now: each binlog reader registers its server id, and the server lists
// it while it is connected (SHOW REPLICAS on MySQL 8.0.22 and later, SHOW
// SLAVE HOSTS on MariaDB and older MySQL; the server id is the first
// column of both). nil when the server lists none of them to this user:
// whether a mirror's stream is connected is then unknown.
func (s *Source) replicas() map[uint32]bool {
	for _, q := range []string{"SHOW REPLICAS", "SHOW SLAVE HOSTS"} {
		r, err := s.conn.Execute(q)
		if err != nil {
			continue
		}
		ids := make(map[uint32]bool, r.RowNumber())
		for i := range r.RowNumber() {
			if id, err := r.GetUint(i, 0); err == nil {
				ids[uint32(id)] = true
			}
		}
		return ids
	}
	return nil
}
