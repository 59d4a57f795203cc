package sqlext

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	pgparser "github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
)

// Token kinds used by the grammar. Single-character tokens have the
// character's code as their kind, including '{' and '}', which the
// protobuf enum does not name.
const (
	tokEOF       pg_query.Token = 0
	tokLParen    pg_query.Token = '('
	tokRParen    pg_query.Token = ')'
	tokComma     pg_query.Token = ','
	tokDot       pg_query.Token = '.'
	tokColon     pg_query.Token = ':'
	tokSemicolon pg_query.Token = ';'
	tokEquals    pg_query.Token = '='
	tokLBracket  pg_query.Token = '['
	tokRBracket  pg_query.Token = ']'
	tokLBrace    pg_query.Token = '{'
	tokRBrace    pg_query.Token = '}'
	tokPlus      pg_query.Token = '+'
	tokMinus     pg_query.Token = '-'
)

// token is one lexical token of the input, as found by Postgres' scanner.
type token struct {
	kind  pg_query.Token
	kw    pg_query.KeywordKind
	text  string // source text; empty for the end-of-input token
	start int    // byte offsets of text in the input
	end   int
	pos   Pos // 1-based character position of start
}

// isWord reports whether t can be a name: an identifier, quoted or not, or
// any keyword. Reserved keywords are accepted as names (PeerDB's parser
// accepts them too, so public.user works unquoted).
func (t token) isWord() bool {
	return t.kind == pg_query.Token_IDENT || t.kw != pg_query.KeywordKind_NO_KEYWORD
}

// isQuoted reports whether t is a double-quoted identifier.
func (t token) isQuoted() bool {
	return t.kind == pg_query.Token_IDENT && strings.HasPrefix(t.text, `"`)
}

// is reports whether t is the unquoted word w (given in lower case), in any
// letter case.
func (t token) is(w string) bool {
	return t.isWord() && !t.isQuoted() && lower(t.text) == w
}

// ident returns the identifier t names: quoted identifiers lose their quotes
// and keep their case, unquoted ones are lower-cased as Postgres does.
func (t token) ident() string {
	if t.isQuoted() {
		return strings.ReplaceAll(t.text[1:len(t.text)-1], `""`, `"`)
	}
	return lower(t.text)
}

// isString reports whether t starts a string literal: '...', E'...',
// $tag$...$tag$ or U&'...'.
func (t token) isString() bool {
	return t.kind == pg_query.Token_SCONST || t.kind == pg_query.Token_USCONST
}

// isNumber reports whether t is an unsigned numeric literal.
func (t token) isNumber() bool {
	return t.kind == pg_query.Token_ICONST || t.kind == pg_query.Token_FCONST
}

// found describes t for an error message: the token as written, or end of
// input.
func (t token) found() string {
	if t.kind == tokEOF {
		return "end of input"
	}
	return `"` + t.text + `"`
}

// lower lower-cases ASCII letters only, as Postgres' downcase_identifier does
// for multi-byte encodings.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// scan tokenizes input with Postgres' own scanner. Comments are dropped; the
// result always ends with an end-of-input token whose position is one past
// the last character, where Postgres reports "at end of input".
//
// The scanner's protobuf output is read in place (see scanTokens) rather
// than through pg_query.Scan, which builds a message per token: that keeps a
// large input's scan at about a third of the memory.
func scan(input string) ([]token, error) {
	buf, err := pgparser.ScanToProtobuf(input)
	if err != nil {
		return nil, pgError(err, 0)
	}
	n := 0
	if err := scanTokens(buf, func(pg_query.Token, pg_query.KeywordKind, int, int) { n++ }); err != nil {
		return nil, err
	}
	toks := make([]token, 0, n+1)
	off, chars := 0, 0
	var bad error
	err = scanTokens(buf, func(kind pg_query.Token, kw pg_query.KeywordKind, start, end int) {
		if bad != nil || kind == pg_query.Token_SQL_COMMENT || kind == pg_query.Token_C_COMMENT {
			return
		}
		if start < off || end < start || end > len(input) {
			bad = &SyntaxError{Msg: "scanner returned an invalid token offset", Pos: Pos(chars + 1)}
			return
		}
		chars += utf8.RuneCountInString(input[off:start])
		off = start
		toks = append(toks, token{
			kind:  kind,
			kw:    kw,
			text:  input[start:end],
			start: start,
			end:   end,
			pos:   Pos(chars + 1),
		})
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	chars += utf8.RuneCountInString(input[off:])
	return append(toks, token{kind: tokEOF, start: len(input), end: len(input), pos: Pos(chars + 1)}), nil
}

// scanTokens calls f with each token of a pg_query.ScanResult message in
// buf: field 2 holds the ScanToken messages, whose fields are start (1), end
// (2), token (4) and keyword_kind (5).
func scanTokens(buf []byte, f func(kind pg_query.Token, kw pg_query.KeywordKind, start, end int)) error {
	bad := &SyntaxError{Msg: "scanner returned a malformed token list"}
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return bad
		}
		buf = buf[n:]
		if num != 2 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, buf); n < 0 {
				return bad
			}
			buf = buf[n:]
			continue
		}
		msg, n := protowire.ConsumeBytes(buf)
		if n < 0 {
			return bad
		}
		buf = buf[n:]
		var kind, kw, start, end uint64
		for len(msg) > 0 {
			num, typ, n := protowire.ConsumeTag(msg)
			if n < 0 {
				return bad
			}
			msg = msg[n:]
			if typ != protowire.VarintType {
				if n = protowire.ConsumeFieldValue(num, typ, msg); n < 0 {
					return bad
				}
				msg = msg[n:]
				continue
			}
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return bad
			}
			msg = msg[n:]
			switch num {
			case 1:
				start = v
			case 2:
				end = v
			case 4:
				kind = v
			case 5:
				kw = v
			}
		}
		f(pg_query.Token(int32(kind)), pg_query.KeywordKind(int32(kw)), int(int32(start)), int(int32(end)))
	}
	return nil
}

// pgError turns an error from pg_query into a *SyntaxError. Postgres reports
// cursor positions in characters, 1-based, relative to the text it was given;
// base is the character position of that text's first character minus one.
// A position of 0 (unknown) stays 0.
func pgError(err error, base Pos) *SyntaxError {
	var pe *pgparser.Error
	if !errors.As(err, &pe) {
		if isRecursionLimit(err) {
			return &SyntaxError{
				Code: pgerrcode.StatementTooComplex,
				Msg:  "statement is too complex: its parse tree is nested too deeply",
				Hint: "Write a long chain of conditions as a list: IN (...), = ANY(ARRAY[...]), or split the statement.",
				Pos:  base + 1,
			}
		}
		return &SyntaxError{Msg: err.Error()}
	}
	se := &SyntaxError{Msg: pe.Message}
	if pe.Cursorpos > 0 {
		se.Pos = base + Pos(pe.Cursorpos)
	}
	return se
}

// split cuts toks (which end with the end-of-input token) into statements.
// Each returned statement holds at least one token, followed by its
// terminator: the ';' that ends it or the end-of-input token.
//
// Like psql, a ';' ends a statement only outside parentheses (CREATE RULE ...
// DO (a; b)) and outside the BEGIN ATOMIC ... END body of CREATE [OR
// REPLACE] FUNCTION|PROCEDURE (SQL-standard routine bodies). Unlike psql,
// BEGIN opens a body only when followed by ATOMIC, so a routine named begin
// does not swallow the statements after it.
func split(toks []token) [][]token {
	var (
		stmts [][]token
		start int
		depth int      // parenthesis depth
		begin int      // BEGIN ... END depth in a routine body
		head  []string // leading unquoted words, up to four
	)
	for i, t := range toks {
		switch {
		case t.kind == tokLParen:
			depth++
		case t.kind == tokRParen:
			if depth > 0 {
				depth--
			}
		case t.kind == tokEOF || t.kind == tokSemicolon && depth == 0 && begin == 0:
			if i > start {
				stmts = append(stmts, toks[start:i+1])
			}
			start, depth, begin, head = i+1, 0, 0, head[:0]
		case t.isWord() && !t.isQuoted():
			w := lower(t.text)
			if len(head) < 4 {
				head = append(head, w)
			}
			if depth > 0 || !isRoutineHead(head) {
				break
			}
			switch {
			case w == "begin" && toks[i+1].is("atomic"):
				begin++
			case w == "case" && begin > 0:
				begin++ // CASE ... END inside the body
			case w == "end" && begin > 0:
				begin--
			}
		}
	}
	return stmts
}

// isRoutineHead reports whether a statement's leading words are CREATE [OR
// REPLACE] FUNCTION or PROCEDURE, psql's test for a body that may hold
// semicolons.
func isRoutineHead(head []string) bool {
	routine := func(w string) bool { return w == "function" || w == "procedure" }
	switch {
	case len(head) < 2 || head[0] != "create":
		return false
	case routine(head[1]):
		return true
	default:
		return len(head) >= 4 && head[1] == "or" && head[2] == "replace" && routine(head[3])
	}
}
