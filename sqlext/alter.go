package sqlext

import "fmt"

// alterMirror parses ALTER MIRROR [IF EXISTS] m SET (key = value, ...) and
// ALTER MIRROR [IF EXISTS] m RESET (key, ...).
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
	default:
		return nil, p.expected("SET or RESET after mirror name")
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
