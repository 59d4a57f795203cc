package sqlext

import "strings"

// peerTypes lists the peer types CREATE PEER accepts, in the order error
// messages name them.
var peerTypes = []PeerType{PeerPostgres, PeerClickHouse, PeerMySQL, PeerSnowflake, PeerBigQuery}

// createPeer parses CREATE PEER [IF NOT EXISTS] name FROM type [WITH (...)].
func (p *parser) createPeer(text string) (*CreatePeer, error) {
	p.next() // CREATE
	p.next() // PEER
	s := &CreatePeer{Text: text}
	var err error
	if s.IfNotExists, err = p.ifNotExists(); err != nil {
		return nil, err
	}
	if s.Name, s.NamePos, err = p.name("peer name"); err != nil {
		return nil, err
	}
	if err := p.expect("from", "FROM after peer name"); err != nil {
		return nil, err
	}
	t := p.peek()
	if !t.isWord() {
		return nil, p.expected("peer type after FROM")
	}
	p.next()
	for _, pt := range peerTypes {
		if upper(t.ident()) == string(pt) {
			s.Type, s.TypePos = pt, t.pos
		}
	}
	if s.Type == "" {
		names := make([]string, len(peerTypes))
		for i, pt := range peerTypes {
			names[i] = string(pt)
		}
		return nil, errorf(t, "unrecognized peer type %s (valid types: %s)", t.found(), strings.Join(names, ", "))
	}
	return s, p.optionsThenEnd(&s.Options)
}

// dropPeer parses DROP PEER [IF EXISTS] name.
func (p *parser) dropPeer(text string) (*DropPeer, error) {
	p.next() // DROP
	p.next() // PEER
	s := &DropPeer{Text: text, IfExists: p.ifExists()}
	var err error
	if s.Name, s.NamePos, err = p.name("peer name"); err != nil {
		return nil, err
	}
	return s, p.end("")
}

// isExecutePeer reports whether the statement is exactly EXECUTE name(
// 'string' ) or PeerDB's EXECUTE name( "string" ). Any other EXECUTE is
// Postgres' own (a prepared statement).
func (p *parser) isExecutePeer() bool {
	if !p.peekN(1).isWord() || p.peekN(2).kind != tokLParen {
		return false
	}
	saved := p.i
	defer func() { p.i = saved }()
	p.i += 3
	n := p.stringSpan()
	if n == 0 && p.peek().isQuoted() {
		n = 1
	}
	return n > 0 && p.peekN(n).kind == tokRParen && p.i+n+1 == len(p.toks)-1
}

// executePeer parses EXECUTE name('string') or EXECUTE name("string");
// isExecutePeer has checked the shape. The double-quoted form is PeerDB's:
// its text is the identifier's, with doubled quotes undoubled and nothing
// truncated (a query is not a name).
func (p *parser) executePeer(text string) (*ExecutePeer, error) {
	p.next() // EXECUTE
	s := &ExecutePeer{Text: text}
	var err error
	if s.Peer, s.PeerPos, err = p.name("peer name"); err != nil {
		return nil, err
	}
	if err := p.expectKind(tokLParen, `"(" after peer name`); err != nil {
		return nil, err
	}
	if t := p.peek(); t.isQuoted() {
		s.Query = t.ident()
		p.next()
	} else if s.Query, err = p.stringLit(); err != nil {
		return nil, err
	}
	if err := p.expectKind(tokRParen, `")" after query`); err != nil {
		return nil, err
	}
	return s, p.end("")
}

// executeMirror parses EXECUTE MIRROR name.
func (p *parser) executeMirror(text string) (*ExecuteMirror, error) {
	p.next() // EXECUTE
	p.next() // MIRROR
	s := &ExecuteMirror{Text: text}
	var err error
	if s.Name, s.NamePos, err = p.name("mirror name"); err != nil {
		return nil, err
	}
	return s, p.end("")
}

// createMirror parses CREATE MIRROR [IF NOT EXISTS] m FROM src TO dst WITH
// TABLE MAPPING (...) [WITH (...)].
func (p *parser) createMirror(text string) (*CreateMirror, error) {
	p.next() // CREATE
	p.next() // MIRROR
	s := &CreateMirror{Text: text}
	var err error
	if s.IfNotExists, err = p.ifNotExists(); err != nil {
		return nil, err
	}
	if s.Name, s.NamePos, err = p.name("mirror name"); err != nil {
		return nil, err
	}
	if err := p.expect("from", "FROM after mirror name"); err != nil {
		return nil, err
	}
	if s.Source, s.SourcePos, err = p.name("source peer name after FROM"); err != nil {
		return nil, err
	}
	if err := p.expect("to", "TO after source peer name"); err != nil {
		return nil, err
	}
	if s.Destination, s.DestPos, err = p.name("destination peer name after TO"); err != nil {
		return nil, err
	}
	if t := p.peek(); t.is("for") {
		return nil, errorf(t, "query replication mirrors (CREATE MIRROR ... FOR $$...$$) are not supported")
	}
	if err := p.expect("with", "WITH TABLE MAPPING after destination peer name"); err != nil {
		return nil, err
	}
	if t := p.peek(); t.is("schema") {
		return nil, errorf(t, "schema mapping (WITH SCHEMA MAPPING) is not supported; list the tables with WITH TABLE MAPPING")
	}
	if err := p.expect("table", "TABLE MAPPING after WITH"); err != nil {
		return nil, err
	}
	if err := p.expect("mapping", "MAPPING after WITH TABLE"); err != nil {
		return nil, err
	}
	if s.Mappings, err = p.mappings(); err != nil {
		return nil, err
	}
	return s, p.optionsThenEnd(&s.Options)
}

// mappings parses the parenthesised, non-empty list after TABLE MAPPING.
func (p *parser) mappings() ([]TableMapping, error) {
	if err := p.expectKind(tokLParen, `"(" after TABLE MAPPING`); err != nil {
		return nil, err
	}
	var out []TableMapping
	for {
		var (
			m   TableMapping
			err error
		)
		switch t := p.peek(); {
		case t.kind == tokLBrace:
			m, err = p.braceMapping()
		case t.isWord():
			m, err = p.pairMapping()
		default:
			err = p.expected("table mapping")
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		if p.acceptKind(tokRParen) {
			return out, nil
		}
		if err := p.expectKind(tokComma, `"," or ")" after table mapping`); err != nil {
			return nil, err
		}
	}
}

// pairMapping parses source:destination.
func (p *parser) pairMapping() (TableMapping, error) {
	src, err := p.qualifiedName("source table name")
	if err != nil {
		return TableMapping{}, err
	}
	if err := p.expectKind(tokColon, `":" after source table name`); err != nil {
		return TableMapping{}, err
	}
	dst, err := p.qualifiedName(`destination table name after ":"`)
	if err != nil {
		return TableMapping{}, err
	}
	return TableMapping{Source: src, Destination: dst, Pos: src.Pos}, nil
}

// mappingKeys lists the keys of a brace mapping, in the order error messages
// name them.
var mappingKeys = []string{"from", "to", "key", "exclude", "order_by"}

// braceMapping parses {from: s.t, to: s.t, key: col, exclude: [a, b],
// order_by: [c]} with keys in any order; from and to are required.
func (p *parser) braceMapping() (TableMapping, error) {
	open := p.next() // {
	m := TableMapping{Pos: open.pos}
	seen := map[string]bool{}
	for {
		k := p.peek()
		if !k.isWord() {
			return TableMapping{}, p.expected("table mapping key")
		}
		key := k.ident()
		if !contains(mappingKeys, key) {
			return TableMapping{}, errorf(k, "unrecognized table mapping key %s (valid keys: %s)",
				k.found(), strings.Join(mappingKeys, ", "))
		}
		if seen[key] {
			return TableMapping{}, errorf(k, "table mapping key %q specified more than once", key)
		}
		seen[key] = true
		p.next()
		if err := p.expectKind(tokColon, `":" after table mapping key "`+key+`"`); err != nil {
			return TableMapping{}, err
		}
		var err error
		switch key {
		case "from":
			m.Source, err = p.qualifiedName(`source table name after "from:"`)
		case "to":
			m.Destination, err = p.qualifiedName(`destination table name after "to:"`)
		case "key":
			m.PartitionKey, _, err = p.name(`column name after "key:"`)
		case "exclude":
			m.Exclude, err = p.list(`"exclude:"`, "column name")
		case "order_by":
			m.OrderBy, err = p.list(`"order_by:"`, "column name")
		}
		if err != nil {
			return TableMapping{}, err
		}
		if p.acceptKind(tokRBrace) {
			break
		}
		if err := p.expectKind(tokComma, `"," or "}" in table mapping`); err != nil {
			return TableMapping{}, err
		}
	}
	for _, key := range []string{"from", "to"} {
		if !seen[key] {
			return TableMapping{}, errorf(open, "table mapping is missing %q", key)
		}
	}
	return m, nil
}

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// dropMirror parses DROP MIRROR [IF EXISTS] m [WITH (...)].
func (p *parser) dropMirror(text string) (*DropMirror, error) {
	p.next() // DROP
	p.next() // MIRROR
	s := &DropMirror{Text: text, IfExists: p.ifExists()}
	var err error
	if s.Name, s.NamePos, err = p.name("mirror name"); err != nil {
		return nil, err
	}
	return s, p.optionsThenEnd(&s.Options)
}

// pauseMirror parses PAUSE MIRROR [IF EXISTS] m [TABLE [schema.]table].
func (p *parser) pauseMirror(text string) (*PauseMirror, error) {
	p.next() // PAUSE
	if err := p.expect("mirror", "MIRROR after PAUSE"); err != nil {
		return nil, err
	}
	s := &PauseMirror{Text: text, IfExists: p.ifExists()}
	var err error
	if s.Name, s.NamePos, err = p.name("mirror name"); err != nil {
		return nil, err
	}
	if s.Table, err = p.optionalTable(); err != nil {
		return nil, err
	}
	return s, p.end("")
}

// optionalTable parses an optional TABLE [schema.]table (one table of a
// mirror).
func (p *parser) optionalTable() (*QualifiedName, error) {
	if !p.accept("table") {
		return nil, nil
	}
	q, err := p.qualifiedName("table name")
	if err != nil {
		return nil, err
	}
	return &q, nil
}

// resumeMirror parses RESUME MIRROR [IF EXISTS] m [TABLE [schema.]table].
func (p *parser) resumeMirror(text string) (*ResumeMirror, error) {
	p.next() // RESUME
	if err := p.expect("mirror", "MIRROR after RESUME"); err != nil {
		return nil, err
	}
	s := &ResumeMirror{Text: text, IfExists: p.ifExists()}
	var err error
	if s.Name, s.NamePos, err = p.name("mirror name"); err != nil {
		return nil, err
	}
	if s.Table, err = p.optionalTable(); err != nil {
		return nil, err
	}
	return s, p.end("")
}

// resync parses RESYNC MIRROR [IF EXISTS] m [WITH (...)] and RESYNC TABLE
// m.schema.table [WITH (...)].
func (p *parser) resync(text string) (Statement, error) {
	p.next() // RESYNC
	switch {
	case p.accept("mirror"):
		s := &ResyncMirror{Text: text, IfExists: p.ifExists()}
		var err error
		if s.Name, s.NamePos, err = p.name("mirror name"); err != nil {
			return nil, err
		}
		return s, p.optionsThenEnd(&s.Options)
	case p.accept("table"):
		return p.resyncTable(text)
	}
	return nil, p.expected("MIRROR or TABLE after RESYNC")
}

// resyncTable parses the rest of RESYNC TABLE m.schema.table [WITH (...)].
// The two-part form m.table leaves Table.Schema empty, for the executor to
// resolve.
func (p *parser) resyncTable(text string) (*ResyncTable, error) {
	parts, err := p.dottedName("mirror.schema.table after RESYNC TABLE", 3)
	if err != nil {
		return nil, err
	}
	if len(parts) == 1 {
		return nil, errorf(parts[0].tok, "table name %s must be qualified with its mirror name (mirror.schema.table)",
			parts[0].tok.found())
	}
	table := parts[len(parts)-1]
	s := &ResyncTable{
		Text:    text,
		Mirror:  parts[0].name,
		NamePos: parts[0].tok.pos,
		Table:   QualifiedName{Name: table.name, Pos: parts[1].tok.pos},
	}
	if len(parts) == 3 {
		s.Table.Schema = parts[1].name
	}
	return s, p.optionsThenEnd(&s.Options)
}

// optionsThenEnd parses the optional trailing WITH (...) of a statement into
// opts and checks that nothing follows.
func (p *parser) optionsThenEnd(opts *Options) error {
	if !p.peek().is("with") {
		return p.end("WITH")
	}
	var err error
	if *opts, err = p.optionalWith(); err != nil {
		return err
	}
	return p.end("")
}
