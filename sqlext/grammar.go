package sqlext

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// parser is a recursive-descent parser over one statement's tokens. It is
// used once, for one statement.
type parser struct {
	sql  string
	toks []token // the statement's tokens, then its terminator (';' or end of input)
	i    int
}

// peek returns the current token; at the end it keeps returning the
// terminator.
func (p *parser) peek() token { return p.peekN(0) }

// peekN returns the token n places after the current one, or the terminator.
func (p *parser) peekN(n int) token {
	if i := p.i + n; i < len(p.toks) {
		return p.toks[i]
	}
	return p.toks[len(p.toks)-1]
}

// next consumes and returns the current token. It never moves past the
// terminator.
func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

// atEnd reports whether every token of the statement has been consumed.
func (p *parser) atEnd() bool { return p.i >= len(p.toks)-1 }

// accept consumes the current token if it is the unquoted word w.
func (p *parser) accept(w string) bool {
	if p.peek().is(w) {
		p.next()
		return true
	}
	return false
}

// acceptKind consumes the current token if it is of kind k.
func (p *parser) acceptKind(k pg_query.Token) bool {
	if p.peek().kind == k && k != tokEOF {
		p.next()
		return true
	}
	return false
}

// errorf returns a *SyntaxError at t.
func errorf(t token, format string, args ...any) *SyntaxError {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...), Pos: t.pos}
}

// expected reports that the current token is not what, e.g. `expected TO
// after source peer name, found "x"`.
func (p *parser) expected(what string) *SyntaxError {
	t := p.peek()
	return errorf(t, "expected %s, found %s", what, t.found())
}

// expect consumes the unquoted word w or fails with expected(what).
func (p *parser) expect(w, what string) error {
	if !p.accept(w) {
		return p.expected(what)
	}
	return nil
}

// expectKind consumes a token of kind k or fails with expected(what).
func (p *parser) expectKind(k pg_query.Token, what string) error {
	if !p.acceptKind(k) {
		return p.expected(what)
	}
	return nil
}

// end checks that the statement is complete. orWhat names what else could
// have followed ("WITH"), for a more helpful message; empty gives Postgres'
// plain syntax error.
func (p *parser) end(orWhat string) error {
	if p.atEnd() {
		return nil
	}
	t := p.peek()
	if orWhat != "" {
		return errorf(t, "expected %s or end of statement, found %s", orWhat, t.found())
	}
	return errorf(t, "syntax error at or near %s", t.found())
}

// name parses one identifier; what describes it for errors ("peer name").
func (p *parser) name(what string) (string, Pos, error) {
	t := p.peek()
	if !t.isWord() {
		return "", 0, p.expected(what)
	}
	p.next()
	return t.ident(), t.pos, nil
}

// ifNotExists parses an optional IF NOT EXISTS. IF alone is left as a name.
func (p *parser) ifNotExists() (bool, error) {
	if !p.peek().is("if") || !p.peekN(1).is("not") {
		return false, nil
	}
	p.next()
	p.next()
	return true, p.expect("exists", "EXISTS after IF NOT")
}

// ifExists parses an optional IF EXISTS. IF alone is left as a name.
func (p *parser) ifExists() bool {
	if p.peek().is("if") && p.peekN(1).is("exists") {
		p.next()
		p.next()
		return true
	}
	return false
}

// namePart is one part of a dotted name.
type namePart struct {
	name string
	tok  token
}

// dottedName parses name {. name} with at most max parts; what describes
// the whole name for errors ("source table name").
func (p *parser) dottedName(what string, max int) ([]namePart, error) {
	if !p.peek().isWord() {
		return nil, p.expected(what)
	}
	parts := []namePart{{name: p.peek().ident(), tok: p.next()}}
	for p.acceptKind(tokDot) {
		if !p.peek().isWord() {
			return nil, p.expected(`name after "."`)
		}
		parts = append(parts, namePart{name: p.peek().ident(), tok: p.next()})
	}
	if len(parts) > max {
		first, last := parts[0].tok, parts[len(parts)-1].tok
		return nil, errorf(first, "improper qualified name (too many dotted names): %s", p.sql[first.start:last.end])
	}
	return parts, nil
}

// qualifiedName parses [schema.]name.
func (p *parser) qualifiedName(what string) (QualifiedName, error) {
	parts, err := p.dottedName(what, 2)
	if err != nil {
		return QualifiedName{}, err
	}
	q := QualifiedName{Name: parts[len(parts)-1].name, Pos: parts[0].tok.pos}
	if len(parts) == 2 {
		q.Schema = parts[0].name
	}
	return q, nil
}

// optionalWith parses an optional WITH (key = value, ...).
func (p *parser) optionalWith() (Options, error) {
	if !p.accept("with") {
		return nil, nil
	}
	return p.options()
}

// options parses (key = value, ...) after WITH. The list may not be empty and
// a key may not repeat; which keys are allowed is for the executor to say.
func (p *parser) options() (Options, error) {
	if err := p.expectKind(tokLParen, `"(" after WITH`); err != nil {
		return nil, err
	}
	var opts Options
	for {
		k := p.peek()
		if !k.isWord() {
			return nil, p.expected("option name")
		}
		p.next()
		key := k.ident()
		if _, dup := opts.Get(key); dup {
			return nil, errorf(k, "option %q specified more than once", key)
		}
		if err := p.expectKind(tokEquals, fmt.Sprintf(`"=" after option name %q`, key)); err != nil {
			return nil, err
		}
		v, err := p.value(key)
		if err != nil {
			return nil, err
		}
		opts = append(opts, Option{Key: key, Value: v, Pos: k.pos})
		if p.acceptKind(tokRParen) {
			return opts, nil
		}
		if err := p.expectKind(tokComma, `"," or ")" after option value`); err != nil {
			return nil, err
		}
	}
}

// value parses an option value: a string literal, an optionally signed
// number, TRUE or FALSE, or a bare (unquoted) word.
func (p *parser) value(key string) (Value, error) {
	t := p.peek()
	switch {
	case t.isString():
		s, err := p.stringLit()
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: StringValue, Text: s, Pos: t.pos}, nil
	case t.kind == tokPlus || t.kind == tokMinus:
		p.next()
		n := p.peek()
		if !n.isNumber() {
			return Value{}, p.expected(fmt.Sprintf("number after %q", t.text))
		}
		p.next()
		return Value{Kind: NumberValue, Text: t.text + n.text, Pos: t.pos}, nil
	case t.isNumber():
		p.next()
		return Value{Kind: NumberValue, Text: t.text, Pos: t.pos}, nil
	case t.is("true") || t.is("false"):
		p.next()
		return Value{Kind: BoolValue, Text: lower(t.text), Pos: t.pos}, nil
	case t.isQuoted():
		return Value{}, errorf(t, "expected value for option %q, found quoted identifier %s (string literals take single quotes)",
			key, t.found())
	case t.isWord():
		p.next()
		return Value{Kind: IdentValue, Text: t.ident(), Pos: t.pos}, nil
	}
	return Value{}, p.expected(fmt.Sprintf("value for option %q", key))
}

// stringSpan returns how many tokens the string literal at the current token
// spans: one, or three for U&'...' UESCAPE 'c'; 0 if there is none.
func (p *parser) stringSpan() int {
	t := p.peek()
	switch {
	case t.kind == pg_query.Token_SCONST:
		return 1
	case t.kind == pg_query.Token_USCONST:
		if p.peekN(1).is("uescape") && p.peekN(2).kind == pg_query.Token_SCONST {
			return 3
		}
		return 1
	}
	return 0
}

// stringLit consumes the string literal at the current token and returns its
// value, decoded by Postgres itself so that every form (doubled quotes, E'\n',
// $$...$$, U&'\0041', 'con' 'tinued') means exactly what it means there.
func (p *parser) stringLit() (string, error) {
	n := p.stringSpan()
	if n == 0 {
		return "", p.expected("string literal")
	}
	first, last := p.peek(), p.peekN(n-1)
	for range n {
		p.next()
	}
	const prefix = "SELECT "
	res, err := pg_query.Parse(prefix + p.sql[first.start:last.end])
	if err != nil {
		se := pgError(err, first.pos-1-Pos(len(prefix)))
		if se.Pos < first.pos {
			se.Pos = first.pos
		}
		return "", se
	}
	stmts := res.GetStmts()
	if len(stmts) == 1 {
		targets := stmts[0].GetStmt().GetSelectStmt().GetTargetList()
		if len(targets) == 1 {
			if c := targets[0].GetResTarget().GetVal().GetAConst(); c.GetSval() != nil {
				return c.GetSval().GetSval(), nil
			}
		}
	}
	return "", errorf(first, "expected string literal, found %s", first.found())
}

// list parses [name, ...] (possibly empty); what describes one element.
func (p *parser) list(context, what string) ([]string, error) {
	if err := p.expectKind(tokLBracket, `"[" after `+context); err != nil {
		return nil, err
	}
	out := []string{}
	if p.acceptKind(tokRBracket) {
		return out, nil
	}
	for {
		s, _, err := p.name(what)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if p.acceptKind(tokRBracket) {
			return out, nil
		}
		if err := p.expectKind(tokComma, fmt.Sprintf(`"," or "]" after %s`, what)); err != nil {
			return nil, err
		}
	}
}

// upper upper-cases ASCII letters only.
func upper(s string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}
