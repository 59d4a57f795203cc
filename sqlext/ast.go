package sqlext

import (
	"fmt"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/sqlerr"
)

// Statement is one parsed statement: either one of Sluice's own verbs
// (CreatePeer, CreateMirror, ...) or a Passthrough of standard SQL.
type Statement interface {
	// SQL returns the statement's own text, without the trailing semicolon.
	SQL() string
	stmt()
}

// Pos is a 1-based character offset into the text given to Parse, as
// Postgres reports positions in ErrorResponse.
type Pos int

// Value is an option value: a string, number or boolean literal as written.
// Numbers and booleans keep their source text (port = 5432 and port = '5432'
// both give Text "5432").
type Value struct {
	Kind ValueKind
	Text string
	Pos  Pos
}

// ValueKind tells which literal form an option value had.
type ValueKind int

// Literal forms of an option value.
const (
	StringValue ValueKind = iota
	NumberValue
	BoolValue
	IdentValue // an unquoted word such as swap in strategy = swap
)

// String names the kind for error messages: "string", "number", "boolean"
// or "identifier".
func (k ValueKind) String() string {
	switch k {
	case StringValue:
		return "string"
	case NumberValue:
		return "number"
	case BoolValue:
		return "boolean"
	case IdentValue:
		return "identifier"
	}
	return fmt.Sprintf("ValueKind(%d)", int(k))
}

// Option is one key = value pair of a WITH (...) list. Keys are lower-cased.
type Option struct {
	Key   string
	Value Value
	Pos   Pos // position of the key
}

// Options is a WITH (...) list in source order. Parse rejects a key given twice.
type Options []Option

// Get returns the option named key and whether it was present.
func (o Options) Get(key string) (Option, bool) {
	for _, opt := range o {
		if opt.Key == key {
			return opt, true
		}
	}
	return Option{}, false
}

// QualifiedName is a possibly schema-qualified name such as public.users.
// Unquoted identifiers are lower-cased as in Postgres; quoted ones are kept.
type QualifiedName struct {
	Schema string // empty when not given
	Name   string
	Pos    Pos
}

// String renders the name as schema.name (or name) without quoting.
func (q QualifiedName) String() string {
	if q.Schema == "" {
		return q.Name
	}
	return q.Schema + "." + q.Name
}

// PeerType is the kind of database a peer is.
type PeerType string

// Peer types accepted by CREATE PEER.
const (
	PeerPostgres   PeerType = "POSTGRES"
	PeerClickHouse PeerType = "CLICKHOUSE"
	PeerMySQL      PeerType = "MYSQL"
	PeerSnowflake  PeerType = "SNOWFLAKE"
	PeerBigQuery   PeerType = "BIGQUERY"
)

// CreatePeer is CREATE PEER [IF NOT EXISTS] name FROM type [WITH (...)].
type CreatePeer struct {
	Text        string
	IfNotExists bool
	Name        string
	NamePos     Pos
	Type        PeerType
	TypePos     Pos
	Options     Options
}

// DropPeer is DROP PEER [IF EXISTS] name.
type DropPeer struct {
	Text     string
	IfExists bool
	Name     string
	NamePos  Pos
}

// ExecutePeer is EXECUTE peer('raw sql'), or PeerDB's EXECUTE peer("raw sql").
type ExecutePeer struct {
	Text    string
	Peer    string
	PeerPos Pos
	Query   string // the string literal's value, unescaped
}

// QueryLiteral locates the string literal that Query was decoded from: it
// returns the literal as written (quotes, E or U& prefix and all; a
// double-quoted one for PeerDB's EXECUTE peer("...")) and the
// 1-based character position of its first character in the text given to
// Parse (the same base as PeerPos). ok is false when Text does not have the
// shape EXECUTE name(literal), which Parse never returns. It scans Text again
// with Postgres' scanner, does no I/O and is safe for concurrent use.
func (s *ExecutePeer) QueryLiteral() (raw string, pos Pos, ok bool) {
	toks, err := scan(s.Text)
	if err != nil || len(toks) < 5 || toks[2].kind != tokLParen || !toks[3].isString() && !toks[3].isQuoted() {
		return "", 0, false
	}
	name, lit := toks[1], toks[3]
	return lit.text, s.PeerPos - name.pos + lit.pos, true
}

// TextPos returns the 1-based character position of Text's first character
// in the text given to Parse (the same base as PeerPos), or 0 when Text does
// not have the shape EXECUTE name(literal).
func (s *ExecutePeer) TextPos() Pos {
	toks, err := scan(s.Text)
	if err != nil || len(toks) < 2 {
		return 0
	}
	return s.PeerPos - toks[1].pos + 1
}

// TableMapping is one entry of WITH TABLE MAPPING (...): either
// source:destination or {from: s.t, to: s.t, key: col, exclude: [a, b], ...}.
type TableMapping struct {
	Source      QualifiedName
	Destination QualifiedName
	// PartitionKey is the brace form's key: the snapshot partition column.
	PartitionKey string
	// Exclude lists columns not replicated.
	Exclude []string
	// OrderBy is the brace form's order_by: [a, b] (used by ClickHouse).
	OrderBy []string
	Pos     Pos
}

// CreateMirror is CREATE MIRROR [IF NOT EXISTS] m FROM src TO dst WITH TABLE
// MAPPING (...) [WITH (...)].
type CreateMirror struct {
	Text        string
	IfNotExists bool
	Name        string
	NamePos     Pos
	Source      string
	SourcePos   Pos
	Destination string
	DestPos     Pos
	Mappings    []TableMapping
	Options     Options
}

// DropMirror is DROP MIRROR [IF EXISTS] m [WITH (...)].
type DropMirror struct {
	Text     string
	IfExists bool
	Name     string
	NamePos  Pos
	Options  Options
}

// PauseMirror is PAUSE MIRROR [IF EXISTS] m [TABLE [schema.]table]. With
// a Table, only that table's changes stop; the others stream.
type PauseMirror struct {
	Text     string
	IfExists bool
	Name     string
	NamePos  Pos
	Table    *QualifiedName // nil: the whole mirror
}

// ResumeMirror is RESUME MIRROR [IF EXISTS] m [TABLE [schema.]table].
// With a Table, that paused or failed table catches up and streams again.
type ResumeMirror struct {
	Text     string
	IfExists bool
	Name     string
	NamePos  Pos
	Table    *QualifiedName // nil: the whole mirror
}

// ResyncMirror is RESYNC MIRROR [IF EXISTS] m [WITH (...)].
type ResyncMirror struct {
	Text     string
	IfExists bool
	Name     string
	NamePos  Pos
	Options  Options
}

// ResyncTable is RESYNC TABLE m.schema.table [WITH (...)]. Parse also
// accepts m.table, leaving Table.Schema empty. NamePos is the position of m;
// Table.Pos that of the schema (or of the table when no schema is given).
type ResyncTable struct {
	Text    string
	Mirror  string
	Table   QualifiedName
	NamePos Pos
	Options Options
}

// ExecuteMirror is PeerDB's EXECUTE MIRROR m (query replication); parsed so
// that it can be refused clearly.
type ExecuteMirror struct {
	Text    string
	Name    string
	NamePos Pos
}

// Passthrough is standard SQL, parsed by pg_query and handed on unchanged.
type Passthrough struct {
	Text string
	// Stmt is pg_query's parse tree of Text; positions in it are relative to Text.
	Stmt *pg_query.RawStmt
	// Offset is Text's 0-based byte offset in the string given to Parse.
	Offset int
}

// SQL returns the statement's text, as the Statement interface requires.
func (s *CreatePeer) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *DropPeer) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *ExecutePeer) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *CreateMirror) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *DropMirror) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *PauseMirror) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *ResumeMirror) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *ResyncMirror) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *ResyncTable) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *ExecuteMirror) SQL() string { return s.Text }

// SQL returns the statement's text, as the Statement interface requires.
func (s *Passthrough) SQL() string { return s.Text }

func (*CreatePeer) stmt()    {}
func (*DropPeer) stmt()      {}
func (*ExecutePeer) stmt()   {}
func (*CreateMirror) stmt()  {}
func (*DropMirror) stmt()    {}
func (*PauseMirror) stmt()   {}
func (*ResumeMirror) stmt()  {}
func (*ResyncMirror) stmt()  {}
func (*ResyncTable) stmt()   {}
func (*ExecuteMirror) stmt() {}
func (*Passthrough) stmt()   {}

// SyntaxError is a parse failure. Pos is 1-based in the text given to Parse
// (0 when unknown); the server reports it as SQLSTATE Code (42601,
// syntax_error, when empty) with that position and Hint.
type SyntaxError struct {
	Msg string
	Pos Pos
	// Code is set for a statement refused for its size or depth before it
	// was parsed: 54001 (statement_too_complex), see MaxDepth and MaxTokens.
	Code string
	Hint string // a full sentence, or empty
}

// Error returns Msg, without the position.
func (e *SyntaxError) Error() string { return e.Msg }

// SQLError returns e as a SQL error: SQLSTATE Code (42601 when empty),
// Msg, Pos and Hint.
func (e *SyntaxError) SQLError() *sqlerr.Error {
	code := e.Code
	if code == "" {
		code = pgerrcode.SyntaxError
	}
	se := sqlerr.New(code, "%s", e.Msg).WithPosition(int(e.Pos))
	se.Hint = e.Hint
	return se
}

// ALTER MIRROR. Its own block: each form is an action.

// AlterAction is what an ALTER MIRROR statement does.
type AlterAction int

// ALTER MIRROR actions.
const (
	// AlterSet is SET (key = value, ...): Options holds the list.
	AlterSet AlterAction = iota + 1
	// AlterReset is RESET (key, ...): Reset holds the names.
	AlterReset
	// AlterAddTable is ADD TABLE MAPPING (...) [WITH (...)]: Mappings
	// holds the tables, With the options.
	AlterAddTable
	// AlterDropTable is DROP TABLE schema.table [WITH (...)]: Table names
	// the source table, With holds the options.
	AlterDropTable
)

// String names the action as written: "SET", "RESET", "ADD TABLE" or
// "DROP TABLE".
func (a AlterAction) String() string {
	switch a {
	case AlterSet:
		return "SET"
	case AlterReset:
		return "RESET"
	case AlterAddTable:
		return "ADD TABLE"
	case AlterDropTable:
		return "DROP TABLE"
	}
	return fmt.Sprintf("AlterAction(%d)", int(a))
}

// OptionName is one name of a RESET (...) list. Key is lower-cased as an
// option key is.
type OptionName struct {
	Key string
	Pos Pos
}

// AlterMirror is ALTER MIRROR [IF EXISTS] m followed by one action:
// SET (key = value [, ...]), RESET (key [, ...]), ADD TABLE MAPPING
// (mapping [, ...]) [WITH (...)] or DROP TABLE [schema.]table [WITH (...)].
// No list may be empty or name a key twice; which keys are accepted is
// for the executor to say.
type AlterMirror struct {
	Text      string
	IfExists  bool
	Name      string
	NamePos   Pos
	Action    AlterAction
	ActionPos Pos
	// Options are SET's options (nil for RESET).
	Options Options
	// Reset are RESET's names (nil for SET).
	Reset []OptionName
	// Mappings are ADD TABLE's tables, as CREATE MIRROR's.
	Mappings []TableMapping
	// Table is DROP TABLE's source table (Schema empty when not given).
	Table QualifiedName
	// With are ADD TABLE's and DROP TABLE's WITH (...) options.
	With Options
}

// SQL returns the statement's text, as the Statement interface requires.
func (s *AlterMirror) SQL() string { return s.Text }

func (*AlterMirror) stmt() {}
