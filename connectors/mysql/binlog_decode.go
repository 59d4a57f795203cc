package mysql

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/sluicedb/sluice/connectors"
)

// binlogDecoder turns binlog events into stream events: the transactions
// that change mirrored tables, as EventBegin, EventChange and EventCommit,
// and progress for the rest. It runs on the stream's goroutine.
//
// A transaction's position (EventBegin.Pos) is where its first event (its
// GTID event, or BEGIN) starts: the end of the transaction before it, so
// that a transaction the destination has applied begins before the
// applied position and the next one does not. Its version is that
// position's Version plus one: a snapshot taken at a position holds the
// transactions that end at or before it, whose versions are at most the
// snapshot's, and every later transaction's version is above it.
type binlogDecoder struct {
	cfg    binlogConfig
	tables map[connectors.TableName]*streamTable
	// file and seq are the binlog file the events come from.
	file string
	seq  uint64

	// The open transaction, if open.
	open       bool
	sawBegin   bool // its events end with a COMMIT or XID (not one standalone statement)
	begun      bool // EventBegin sent: it changed a mirrored table
	begin      point
	beginTime  time.Time
	lastCommit point
}

// point is a position in the binlog as the decoder tracks it: the file, its
// sequence number and an offset.
type point struct {
	file     string
	seq, off uint64
}

// version is p's Version.
func (p point) version() uint64 { return p.seq<<offsetBits | p.off }

// position is p as a connectors.Position.
func (p point) position() connectors.Position { return encodePosition(p.version(), p.file) }

// streamTable is a mirrored table as the decoder reads its rows.
type streamTable struct {
	schema *connectors.TableSchema
	// sig identifies the columns of the table map the mapping below was
	// made for (names, types and charsets).
	sig string
	// idx[i] is the binlog column of schema column i; enc[i] encodes it.
	idx []int
	enc []binlogEncoder
	key []int
}

func newBinlogDecoder(cfg binlogConfig, start point, tables map[connectors.TableName]*connectors.TableSchema) *binlogDecoder {
	d := &binlogDecoder{cfg: cfg, tables: make(map[connectors.TableName]*streamTable, len(tables)),
		file: start.file, seq: start.seq, lastCommit: start}
	for t, ts := range tables {
		d.tables[t] = &streamTable{schema: ts}
	}
	return d
}

// at returns the position offset in the current file.
func (d *binlogDecoder) at(offset uint32) point {
	return point{file: d.file, seq: d.seq, off: uint64(offset)}
}

// decode returns the stream events of ev.
func (d *binlogDecoder) decode(ctx context.Context, ev *replication.BinlogEvent) ([]connectors.Event, error) {
	h := ev.Header
	// Where ev starts: artificial events (a rotate at the start, a format
	// description resent) have no position.
	var start uint32
	if h.LogPos >= h.EventSize {
		start = h.LogPos - h.EventSize
	}
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		seq, err := fileSeq(string(e.NextLogName))
		if err != nil {
			return nil, err
		}
		d.file, d.seq = string(e.NextLogName), seq
	case *replication.MariadbGTIDEvent:
		d.openTx(d.at(start), h)
		// Without the standalone flag, the GTID event stands for BEGIN.
		d.sawBegin = !e.IsStandalone()
	case *replication.GTIDEvent:
		d.openTx(d.at(start), h)
	case *replication.QueryEvent:
		return d.query(e, start, h)
	case *replication.RowsEvent:
		return d.rows(ctx, e, h)
	case *replication.XIDEvent:
		return d.commit(h)
	case *replication.HeartbeatEvent:
		if !d.open && e.Filename == d.file && h.LogPos > 0 {
			p := d.at(h.LogPos)
			if d.lastCommit.version() < p.version() {
				return []connectors.Event{{Kind: connectors.EventProgress, Pos: p.position()}}, nil
			}
		}
	}
	return nil, nil
}

// openTx starts a transaction at pos (its first event, with header h).
func (d *binlogDecoder) openTx(pos point, h *replication.EventHeader) {
	d.open, d.sawBegin, d.begun = true, false, false
	d.begin = pos
	d.beginTime = time.Unix(int64(h.Timestamp), 0)
}

// beginEvent returns the EventBegin of the open transaction, once.
func (d *binlogDecoder) beginEvent(out []connectors.Event) []connectors.Event {
	if d.begun {
		return out
	}
	d.begun = true
	return append(out, connectors.Event{Kind: connectors.EventBegin, Pos: d.begin.position(),
		Version: d.begin.version() + 1, CommitTime: d.beginTime})
}

// commit ends the open transaction at the end of the event with header h.
func (d *binlogDecoder) commit(h *replication.EventHeader) ([]connectors.Event, error) {
	end := d.at(h.LogPos)
	begun := d.begun
	d.open, d.sawBegin, d.begun = false, false, false
	d.lastCommit = end
	if !begun {
		// Nothing mirrored in it: the stream has only moved on.
		return []connectors.Event{{Kind: connectors.EventProgress, Pos: end.position()}}, nil
	}
	return []connectors.Event{{Kind: connectors.EventCommit, Pos: end.position(), CommitTime: time.Unix(int64(h.Timestamp), 0)}}, nil
}

// query handles a statement event: BEGIN and COMMIT of transactions, and
// DDL, logged as statements even in row format.
func (d *binlogDecoder) query(e *replication.QueryEvent, start uint32, h *replication.EventHeader) ([]connectors.Event, error) {
	q := strings.TrimSpace(string(e.Query))
	switch {
	case strings.EqualFold(q, "BEGIN"):
		if !d.open {
			d.openTx(d.at(start), h)
		}
		d.sawBegin = true
		return nil, nil
	case strings.EqualFold(q, "COMMIT"):
		return d.commit(h)
	}
	if !d.open {
		d.openTx(d.at(start), h)
	}
	out, err := d.ddl(string(e.Schema), q)
	if err != nil {
		return nil, err
	}
	if d.sawBegin {
		return out, nil // inside a transaction: its COMMIT ends it
	}
	done, err := d.commit(h)
	return append(out, done...), err
}

// ddl returns the changes a DDL statement makes to mirrored tables (a
// TRUNCATE), or an error for one that removes or renames a mirrored table.
// Columns added to a table are followed when its rows show them (rows).
func (d *binlogDecoder) ddl(schema, q string) ([]connectors.Event, error) {
	verb, rest := firstWord(skipComments(q))
	var tables []connectors.TableName
	switch strings.ToUpper(verb) {
	case "TRUNCATE":
		if w, r := firstWord(rest); strings.EqualFold(w, "TABLE") {
			rest = r
		}
		t, _, ok := parseTableRef(rest, schema)
		if !ok {
			return nil, nil
		}
		if _, mirrored := d.tables[t]; !mirrored {
			return nil, nil
		}
		out := d.beginEvent(nil)
		return append(out, connectors.Event{Kind: connectors.EventChange, Table: t,
			Change: connectors.Change{Kind: connectors.Truncate, Table: t}}), nil
	case "DROP", "RENAME":
		w, r := firstWord(rest)
		if !strings.EqualFold(w, "TABLE") && !strings.EqualFold(w, "TABLES") {
			return nil, nil
		}
		if w2, r2 := firstWord(r); strings.EqualFold(w2, "IF") {
			_, r = firstWord(r2) // IF EXISTS
		}
		for {
			t, after, ok := parseTableRef(r, schema)
			if !ok {
				break
			}
			tables = append(tables, t)
			// RENAME TABLE a TO b, c TO d; DROP TABLE a, b
			after = strings.TrimSpace(after)
			if w, r2 := firstWord(after); strings.EqualFold(w, "TO") {
				_, after, _ = parseTableRef(r2, schema)
				after = strings.TrimSpace(after)
			}
			if !strings.HasPrefix(after, ",") {
				break
			}
			r = after[1:]
		}
		for _, t := range tables {
			if _, mirrored := d.tables[t]; mirrored {
				return nil, fmt.Errorf("%w: %s on the source: %s; RESYNC MIRROR rebuilds the mirror, or drop it", errDDL,
					strings.ToUpper(verb)+" TABLE "+t.Schema+"."+t.Name, abbreviate(q))
			}
		}
	case "ALTER":
		// ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] t ... RENAME [TO] u
		// renames the table as RENAME TABLE does (RENAME COLUMN, INDEX
		// and KEY do not: columns are followed by name in the rows).
		w, r := firstWord(rest)
		for strings.EqualFold(w, "ONLINE") || strings.EqualFold(w, "IGNORE") {
			w, r = firstWord(r)
		}
		if !strings.EqualFold(w, "TABLE") {
			return nil, nil
		}
		if w2, r2 := firstWord(r); strings.EqualFold(w2, "IF") {
			_, r = firstWord(r2) // IF EXISTS
		}
		t, after, ok := parseTableRef(r, schema)
		if _, mirrored := d.tables[t]; !ok || !mirrored {
			return nil, nil
		}
		ws := sqlWords(after)
		for i, w := range ws {
			if !strings.EqualFold(w, "RENAME") {
				continue
			}
			if i+1 < len(ws) && slices.ContainsFunc([]string{"COLUMN", "INDEX", "KEY"}, func(k string) bool { return strings.EqualFold(ws[i+1], k) }) {
				continue
			}
			return nil, fmt.Errorf("%w: ALTER TABLE %s.%s ... RENAME on the source: %s; RESYNC MIRROR rebuilds the mirror, or drop it", errDDL,
				t.Schema, t.Name, abbreviate(q))
		}
	case "CREATE":
		// MariaDB's CREATE OR REPLACE TABLE t drops t first.
		w, r := firstWord(rest)
		if w2, r2 := firstWord(r); !strings.EqualFold(w, "OR") || !strings.EqualFold(w2, "REPLACE") {
			return nil, nil
		} else if w3, r3 := firstWord(r2); strings.EqualFold(w3, "TABLE") {
			if t, _, ok := parseTableRef(r3, schema); ok {
				if _, mirrored := d.tables[t]; mirrored {
					return nil, fmt.Errorf("%w: CREATE OR REPLACE TABLE %s.%s on the source: %s; RESYNC MIRROR rebuilds the mirror, or drop it", errDDL,
						t.Schema, t.Name, abbreviate(q))
				}
			}
		}
	}
	return nil, nil
}

// sqlWords splits s into its words outside quotes: runs of letters,
// digits, _ and $; quoted strings and names, punctuation and spaces
// separate them and are left out.
func sqlWords(s string) []string {
	var out []string
	start := -1
	flush := func(i int) {
		if start >= 0 {
			out = append(out, s[start:i])
			start = -1
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			flush(i)
			for i++; i < len(s) && s[i] != c; i++ {
				if s[i] == '\\' && c != '`' {
					i++
				}
			}
		case c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
			if start < 0 {
				start = i
			}
		default:
			flush(i)
		}
	}
	flush(len(s))
	return out
}

// rows returns the changes of a row event of a mirrored table.
func (d *binlogDecoder) rows(ctx context.Context, e *replication.RowsEvent, h *replication.EventHeader) ([]connectors.Event, error) {
	name := connectors.TableName{Schema: string(e.Table.Schema), Name: string(e.Table.Table)}
	st, ok := d.tables[name]
	if !ok || len(e.Rows) == 0 {
		return nil, nil
	}
	if !d.open {
		return nil, fmt.Errorf("row event of %s outside a transaction", name)
	}
	out, err := d.mapColumns(ctx, name, st, e.Table)
	if err != nil {
		return nil, err
	}
	out = d.beginEvent(out)
	kind := connectors.Insert
	switch h.EventType {
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		kind = connectors.Update
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		kind = connectors.Delete
	}
	step := 1
	if kind == connectors.Update {
		step = 2 // before and after images
	}
	for i := 0; i+step <= len(e.Rows); i += step {
		row, err := st.encode(e.Rows[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		c := connectors.Change{Kind: kind, Table: name}
		switch kind {
		case connectors.Insert:
			c.New = row
		case connectors.Delete:
			c.Old = row
		case connectors.Update:
			after, err := st.encode(e.Rows[i+1])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			c.New = after
			if !st.sameKey(row, after) {
				c.Old = row
			}
		}
		out = append(out, connectors.Event{Kind: connectors.EventChange, Table: name, Change: c})
	}
	return out, nil
}

// encode encodes the mirrored columns of a binlog row.
func (st *streamTable) encode(row []any) ([]connectors.Value, error) {
	vals := make([]connectors.Value, len(st.idx))
	for i, j := range st.idx {
		if j < 0 {
			vals[i] = connectors.Value{Kind: connectors.Unchanged}
			continue
		}
		if j >= len(row) {
			return nil, fmt.Errorf("row has %d columns, column %s is number %d", len(row), st.schema.Columns[i].Name, j+1)
		}
		if row[j] == nil {
			vals[i] = connectors.Value{Kind: connectors.Null}
			continue
		}
		v, err := st.enc[i](row[j])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", st.schema.Columns[i].Name, err)
		}
		vals[i] = v
	}
	return vals, nil
}

// sameKey reports whether two encoded rows have the same primary key.
func (st *streamTable) sameKey(a, b []connectors.Value) bool {
	for _, k := range st.key {
		if a[k].Kind != b[k].Kind || !bytes.Equal(a[k].Data, b[k].Data) {
			return false
		}
	}
	return true
}

// mapColumns makes st's mapping to the columns of table map tm when they
// changed, and returns EventNewColumns when tm has columns the mirror does
// not (added on the source; those excluded are left out).
func (d *binlogDecoder) mapColumns(ctx context.Context, name connectors.TableName, st *streamTable, tm *replication.TableMapEvent) ([]connectors.Event, error) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, fmt.Errorf("the binlog carries no column names for %s: set binlog_row_metadata = FULL on the source", name)
	}
	// The names, the types and their metadata (a varchar's length, a
	// decimal's precision and scale) as the binlog has them, and the
	// charsets: a table converted to another charset logs its text in that
	// charset with the same column types.
	sig := strings.Join(names, "\x00") + "\x00" + string(tm.ColumnType) + fmt.Sprint(tm.ColumnMeta) +
		fmt.Sprint(tm.DefaultCharset, tm.ColumnCharset)
	if sig == st.sig {
		return nil, nil
	}
	// The table as the source has it now, read once: its columns changed
	// in the binlog (not the first mapping), or it gained some.
	var now *connectors.TableSchema
	describe := func() (*connectors.TableSchema, error) {
		if now != nil {
			return now, nil
		}
		var err error
		if now, err = d.cfg.Describe(ctx, name, st.schema.Exclude); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", name, err)
		}
		return now, nil
	}
	if st.sig != "" {
		now, err := describe()
		if err != nil {
			return nil, err
		}
		for _, c := range st.schema.Columns {
			if i := now.ColumnIndex(c.Name); i >= 0 && now.Columns[i].Type != c.Type {
				return nil, fmt.Errorf("%w: column %s of %s changed type on the source, from %s to %s; RESYNC TABLE rebuilds the table",
					errDDL, c.Name, name, c.Type, now.Columns[i].Type)
			}
		}
	}
	var out []connectors.Event
	var added []string
	for _, n := range names {
		if st.schema.ColumnIndex(n) < 0 && !st.schema.Excluded(n) {
			added = append(added, n)
		}
	}
	if len(added) > 0 {
		now, err := describe()
		if err != nil {
			return nil, err
		}
		var cols []connectors.Column
		for _, n := range added {
			i := now.ColumnIndex(n)
			if i < 0 {
				return nil, fmt.Errorf("%w: column %s of %s is in the binlog but no longer on the source", errDDL, n, name)
			}
			cols = append(cols, now.Columns[i])
		}
		ts := *st.schema
		ts.Columns = append(slices.Clip(ts.Columns), cols...)
		st.schema = &ts
		out = d.beginEvent(out)
		out = append(out, connectors.Event{Kind: connectors.EventNewColumns, Table: name, NewColumns: cols})
	}
	idx := make([]int, len(st.schema.Columns))
	enc := make([]binlogEncoder, len(st.schema.Columns))
	for i, c := range st.schema.Columns {
		j := slices.Index(names, c.Name)
		if j < 0 {
			// Rows logged before the column was added (a stream resumed
			// from before an ADD COLUMN) lack it: its value is Unchanged,
			// as for a Postgres source. A column the source no longer has
			// was dropped or renamed, which the mirror does not follow.
			now, err := describe()
			if err != nil {
				return nil, err
			}
			if now.ColumnIndex(c.Name) < 0 {
				return nil, fmt.Errorf("%w: column %s of %s is gone from the source (dropped or renamed); RESYNC TABLE rebuilds the table",
					errDDL, c.Name, name)
			}
			idx[i] = -1
			continue
		}
		e, err := d.cfg.Encoder(c, tm, j)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		idx[i], enc[i] = j, e
	}
	st.idx, st.enc, st.key, st.sig = idx, enc, st.schema.KeyIndexes(), sig
	return out, nil
}

// skipComments returns q without the comments before its first word: the
// binlog logs a statement as the client sent it, and clients and proxies
// put comments first ("/* app: cleanup */ TRUNCATE t"). The text of an
// executable comment ("/*!40101 ... */", "/*M!100100 ... */") is kept:
// the server ran it.
func skipComments(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n")
		switch {
		case strings.HasPrefix(q, "/*"):
			end := strings.Index(q[2:], "*/")
			if end < 0 {
				return ""
			}
			inner, after := q[2:2+end], q[2+end+2:]
			if v, ok := strings.CutPrefix(strings.TrimPrefix(inner, "M"), "!"); ok {
				// The version the text needs, then the text.
				return strings.TrimLeft(v, "0123456789") + " " + after
			}
			q = after
		case strings.HasPrefix(q, "#"), strings.HasPrefix(q, "--") && (len(q) == 2 || q[2] <= ' '):
			end := strings.IndexByte(q, '\n')
			if end < 0 {
				return ""
			}
			q = q[end+1:]
		default:
			return q
		}
	}
}

// firstWord splits s at its first run of spaces: the word before, and the
// rest.
func firstWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, " \t\r\n")
	i := strings.IndexAny(s, " \t\r\n")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// parseTableRef reads a table reference, db.t or t, each part plain or
// in backquotes, from the start of s (after spaces); t alone is in schema.
// It returns the table, the rest of s, and whether there was one.
func parseTableRef(s, schema string) (connectors.TableName, string, bool) {
	part := func(s string) (string, string, bool) {
		s = strings.TrimLeft(s, " \t\r\n")
		if strings.HasPrefix(s, "`") {
			var b strings.Builder
			for i := 1; i < len(s); i++ {
				if s[i] != '`' {
					b.WriteByte(s[i])
					continue
				}
				if i+1 < len(s) && s[i+1] == '`' {
					b.WriteByte('`')
					i++
					continue
				}
				return b.String(), s[i+1:], true
			}
			return "", s, false
		}
		end := strings.IndexFunc(s, func(r rune) bool {
			return !(r == '_' || r == '$' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= 0x80)
		})
		if end < 0 {
			end = len(s)
		}
		return s[:end], s[end:], end > 0
	}
	first, rest, ok := part(s)
	if !ok {
		return connectors.TableName{}, s, false
	}
	if strings.HasPrefix(rest, ".") {
		second, rest2, ok := part(rest[1:])
		if !ok {
			return connectors.TableName{}, s, false
		}
		return connectors.TableName{Schema: first, Name: second}, rest2, true
	}
	return connectors.TableName{Schema: schema, Name: first}, rest, true
}

// abbreviate shortens a statement for a message.
func abbreviate(q string) string {
	const max = 200
	if len(q) > max {
		return q[:max] + "..."
	}
	return q
}
