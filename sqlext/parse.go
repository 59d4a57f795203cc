package sqlext

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Parse splits sql into statements and parses each one: Sluice's own verbs
// (CREATE PEER, CREATE MIRROR, ...) into their typed nodes, anything else with
// Postgres' own parser into a Passthrough. Empty statements are skipped, so
// an input of only whitespace and comments gives no statements and no error.
//
// Parse is all or nothing, as Postgres is with a multi-statement query
// string: it returns either every statement or the first error, which is
// always a *SyntaxError whose Pos is a 1-based character position in sql (0
// when Postgres gives none). Parse does no I/O and is safe for concurrent
// use.
func Parse(sql string) ([]Statement, error) {
	if err := checkEncoding(sql); err != nil {
		return nil, err
	}
	if err := checkSize(sql); err != nil {
		return nil, err
	}
	toks, err := scan(sql)
	if err != nil {
		return nil, scanFailure(sql, err)
	}
	return parseStatements(sql, split(toks), false)
}

// ParseTree parses sql, one or more standard SQL statements, with Postgres'
// parser, after the checks Parse makes first: a query string that may hold
// more than MaxTokens tokens, or a statement nested deeper than MaxDepth, is
// refused with a *SyntaxError whose Code is 54001, without calling into
// pg_query's parser (which can overflow the thread's stack and kill the
// process). Every other error is a *SyntaxError as from Parse, positioned
// in sql. Every parse of SQL that comes from a client must go through
// ParseTree or Parse, never straight to pg_query. Safe for concurrent use.
func ParseTree(sql string) (*pg_query.ParseResult, error) {
	if err := checkEncoding(sql); err != nil {
		return nil, err
	}
	if err := checkSize(sql); err != nil {
		return nil, err
	}
	toks, err := scan(sql)
	if err != nil {
		return nil, err
	}
	for _, st := range split(toks) {
		if err := checkDepth(st); err != nil {
			return nil, err
		}
	}
	res, err := pg_query.Parse(sql)
	if err != nil {
		return nil, pgError(err, 0)
	}
	return res, nil
}

// parseStatements parses each statement. With completeOnly it skips a last
// statement that is not ended by ';'.
func parseStatements(sql string, stmts [][]token, completeOnly bool) ([]Statement, error) {
	out := make([]Statement, 0, len(stmts))
	for _, toks := range stmts {
		if completeOnly && toks[len(toks)-1].kind == tokEOF {
			break
		}
		st, err := parseStatement(sql, toks)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// scanFailure reports a scanner error (such as an unterminated string) the
// way Postgres would. Postgres lexes on demand, so an error in an earlier
// statement is reported before a lexical error further on; scanFailure
// therefore parses the complete statements before the bad token first.
func scanFailure(sql string, scanErr error) error {
	var se *SyntaxError
	if !errors.As(scanErr, &se) || se.Pos <= 0 {
		return scanErr
	}
	prefix := sql[:byteOffset(sql, se.Pos)]
	toks, err := scan(prefix)
	if err != nil {
		return scanErr
	}
	if _, err := parseStatements(prefix, split(toks), true); err != nil {
		return err
	}
	return scanErr
}

// byteOffset returns the byte offset in s of the 1-based character position
// pos, or len(s) when pos is past the end.
func byteOffset(s string, pos Pos) int {
	n := Pos(1)
	for i := range s {
		if n == pos {
			return i
		}
		n++
	}
	return len(s)
}

// checkEncoding rejects input that is not valid UTF-8 or that holds a NUL
// byte (which a query string on the wire cannot contain and which would cut
// the text short for the C scanner).
func checkEncoding(sql string) error {
	pos := Pos(1)
	for i, r := range sql {
		// A decoding error gives RuneError; a genuine U+FFFD is spelled out.
		if r == 0 || r == utf8.RuneError && !strings.HasPrefix(sql[i:], "\uFFFD") {
			return &SyntaxError{
				Msg: fmt.Sprintf(`invalid byte sequence for encoding "UTF8": 0x%02x`, sql[i]),
				Pos: pos,
			}
		}
		pos++
	}
	return nil
}

// parseStatement parses one statement: toks are its tokens followed by its
// terminator. Only the leading words decide whether it is one of ours.
func parseStatement(sql string, toks []token) (Statement, error) {
	if err := checkDepth(toks); err != nil {
		return nil, err
	}
	p := &parser{sql: sql, toks: toks}
	text := sql[toks[0].start:toks[len(toks)-2].end]
	at := func(i int) token { return p.peekN(i) }
	switch {
	case at(0).is("create") && at(1).is("peer"):
		return finish(p.createPeer(text))
	case at(0).is("create") && at(1).is("mirror"):
		return finish(p.createMirror(text))
	case at(0).is("drop") && at(1).is("peer"):
		return finish(p.dropPeer(text))
	case at(0).is("drop") && at(1).is("mirror"):
		return finish(p.dropMirror(text))
	case at(0).is("pause"):
		return finish(p.pauseMirror(text))
	case at(0).is("resume"):
		return finish(p.resumeMirror(text))
	case at(0).is("resync"):
		return finish(p.resync(text))
	case at(0).is("alter") && at(1).is("mirror"):
		return finish(p.alterMirror(text))
	case at(0).is("validate"):
		return finish(p.validateMirror(text))
	case at(0).is("execute") && at(1).is("mirror") && at(2).isWord():
		return finish(p.executeMirror(text))
	case at(0).is("execute") && p.isExecutePeer():
		return finish(p.executePeer(text))
	}
	return finish(passthrough(sql, toks, text))
}

// finish returns s, or only err when parsing failed, so that a failed parse
// never yields a half-built statement.
func finish[S Statement](s S, err error) (Statement, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// passthrough parses standard SQL with pg_query. The text handed to Postgres
// runs to the terminating ';' (or the end of the input), so that errors read
// exactly as Postgres' own: "at or near ";"" rather than "at end of input".
func passthrough(sql string, toks []token, text string) (*Passthrough, error) {
	first, term := toks[0], toks[len(toks)-1]
	res, err := pg_query.Parse(sql[first.start:term.end])
	if err != nil {
		return nil, pgError(err, first.pos-1)
	}
	if n := len(res.GetStmts()); n != 1 {
		return nil, &SyntaxError{Msg: fmt.Sprintf("expected one statement, found %d", n), Pos: first.pos}
	}
	return &Passthrough{Text: text, Stmt: res.GetStmts()[0], Offset: first.start}, nil
}
