package sqlext

import "fmt"

// alterMirror parses ALTER MIRROR [IF EXISTS] m SET (key = value, ...),
// ALTER MIRROR [IF EXISTS] m RESET (key, ...), ALTER MIRROR [IF EXISTS] m
// ADD TABLE MAPPING (...) [WITH (...)] and ALTER MIRROR [IF EXISTS] m DROP
// TABLE [schema.]table [WITH (...)].
func (p *parser) alterMirror(text string) (*AlterMirror, error) {
	p.next() // ALTER
	p.next() // MIRROR
	s := &AlterMirror{Text: text, IfExists: p.ifExists()}
	var err error
	if s.Name, s.NamePos, err = p.name("mirror name"); err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.is("set"):
		p.next()
		s.Action, s.ActionPos = AlterSet, t.pos
		// options() names WITH in its error for a missing "(": say SET.
		if p.peek().kind != tokLParen {
			return nil, p.expected(`"(" after SET`)
		}
		if s.Options, err = p.options(); err != nil {
			return nil, err
		}
	case t.is("reset"):
		p.next()
		s.Action, s.ActionPos = AlterReset, t.pos
		if s.Reset, err = p.optionNames(); err != nil {
			return nil, err
		}
	case t.is("add"):
		p.next()
		s.Action, s.ActionPos = AlterAddTable, t.pos
		if err := p.expect("table", "TABLE MAPPING after ADD"); err != nil {
			return nil, err
		}
		if err := p.expect("mapping", "MAPPING after ADD TABLE"); err != nil {
			return nil, err
		}
		if s.Mappings, err = p.mappings(); err != nil {
			return nil, err
		}
		return s, p.optionsThenEnd(&s.With)
	case t.is("drop"):
		p.next()
		s.Action, s.ActionPos = AlterDropTable, t.pos
		if err := p.expect("table", "TABLE after DROP"); err != nil {
			return nil, err
		}
		if s.Table, err = p.qualifiedName("table name after DROP TABLE"); err != nil {
			return nil, err
		}
		return s, p.optionsThenEnd(&s.With)
	default:
		return nil, p.expected("SET, RESET, ADD TABLE or DROP TABLE after mirror name")
	}
	return s, p.end("")
}

// optionNames parses RESET's (key, ...): a non-empty list of option names,
// none twice.
func (p *parser) optionNames() ([]OptionName, error) {
	if err := p.expectKind(tokLParen, `"(" after RESET`); err != nil {
		return nil, err
	}
	var out []OptionName
	for {
		k := p.peek()
		if !k.isWord() {
			return nil, p.expected("option name")
		}
		p.next()
		key := k.ident()
		for _, o := range out {
			if o.Key == key {
				return nil, errorf(k, "option %q specified more than once", key)
			}
		}
		out = append(out, OptionName{Key: key, Pos: k.pos})
		if p.acceptKind(tokRParen) {
			return out, nil
		}
		if t := p.peek(); t.kind == tokEquals {
			return nil, errorf(t, "RESET takes option names without values, found %s after option name %q", t.found(), key)
		}
		if err := p.expectKind(tokComma, fmt.Sprintf(`"," or ")" after option name %q`, key)); err != nil {
			return nil, err
		}
	}
}
