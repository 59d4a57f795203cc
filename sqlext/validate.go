package sqlext

// VALIDATE MIRROR, in a file of its own: its node and its parser.

// ValidateMirror is VALIDATE MIRROR m [TABLE [schema.]table] [WITH (...)].
// Table is the zero QualifiedName when no table is named; Table.Schema is
// empty when the name has none, for the executor to resolve. Which options
// are allowed (mode) is checked by the executor.
type ValidateMirror struct {
	Text    string
	Name    string
	NamePos Pos
	Table   QualifiedName
	Options Options
}

// SQL returns the statement's text, as the Statement interface requires.
func (s *ValidateMirror) SQL() string { return s.Text }

func (*ValidateMirror) stmt() {}

// validateMirror parses VALIDATE MIRROR m [TABLE [schema.]table] [WITH (...)].
func (p *parser) validateMirror(text string) (*ValidateMirror, error) {
	p.next() // VALIDATE
	if err := p.expect("mirror", "MIRROR after VALIDATE"); err != nil {
		return nil, err
	}
	s := &ValidateMirror{Text: text}
	var err error
	if s.Name, s.NamePos, err = p.name("mirror name"); err != nil {
		return nil, err
	}
	orWhat := "TABLE or WITH"
	if p.accept("table") {
		if s.Table, err = p.qualifiedName("table name after TABLE"); err != nil {
			return nil, err
		}
		orWhat = "WITH"
	}
	if !p.peek().is("with") {
		return s, p.end(orWhat)
	}
	return s, p.optionsThenEnd(&s.Options)
}
