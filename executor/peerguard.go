package executor

import (
	"context"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/sqlerr"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The peer guard judges what a statement's parse tree shows it doing to a
// Postgres server before Sluice sends it there, on two counts:
//
//   - Mirrors' slots and publications (checkOwned): no statement sent to a
//     peer or to the catalog, EXECUTE peer('...') included, may consume,
//     advance, copy, create or drop a replication slot, or alter or drop a
//     publication, that a mirror owns (names from the catalog). Postgres'
//     read-only mode does not stop the slot functions, hence this check.
//     An argument Sluice cannot read as a constant, or such a call in a
//     function body (which Sluice does not parse), is refused as long as
//     any mirror exists: it cannot be shown to spare them.
//   - Functions in a query naming a peer (checkCalls, peerguard_funcs.go):
//     such a query runs read-only and may call only functions known to be
//     safe, an allow-list.
//
// Both refuse with 42501 (insufficient_privilege) and send nothing.

// guardPlan is what the peer guard judges in a statement (or, for EXECUTE,
// in every statement of its string), read once from the parse tree.
type guardPlan struct {
	// calls are the functions called by name, for the allow-list; calls
	// written as SQL syntax (EXTRACT, SUBSTRING ... FROM, AT TIME ZONE)
	// are Postgres' own and left out.
	calls []funcRef
	// uses are the statement's acts on slots and publications.
	uses []objectUse
}

// funcRef is a function called by name.
type funcRef struct {
	schema, name string // as parsed (folded to lower case unless quoted); schema "" if unqualified
	location     int    // byte offset in the text parsed; -1 if unknown
}

// display is the function as a message shows it: name() or schema.name().
func (f funcRef) display() string {
	if f.schema == "" {
		return f.name + "()"
	}
	return f.schema + "." + f.name + "()"
}

// objectKind is what an objectUse acts on.
type objectKind int

const (
	slotObject objectKind = iota
	publicationObject
)

func (k objectKind) String() string {
	if k == publicationObject {
		return "publication"
	}
	return "replication slot"
}

// objectUse is an act on a replication slot or publication.
type objectUse struct {
	kind objectKind
	what string // what acts: "pg_drop_replication_slot()", "DROP PUBLICATION"
	// name is the object's name when the statement gives it as a constant;
	// known is false when it does not (an expression, a parameter, a
	// function body Sluice does not read).
	name  string
	known bool
	// opaque, when set, says where the act was found by its text alone:
	// "a function body", "a statement Sluice cannot parse".
	opaque   string
	location int
}

// slotFunctions are Postgres' functions that act on a replication slot,
// with their slot-name parameters: position (0-based) and name.
var slotFunctions = map[string][]slotParam{
	"pg_drop_replication_slot":            {{0, "slot_name"}},
	"pg_replication_slot_advance":         {{0, "slot_name"}},
	"pg_logical_slot_get_changes":         {{0, "slot_name"}},
	"pg_logical_slot_get_binary_changes":  {{0, "slot_name"}},
	"pg_logical_slot_peek_changes":        {{0, "slot_name"}},
	"pg_logical_slot_peek_binary_changes": {{0, "slot_name"}},
	"pg_copy_logical_replication_slot":    {{0, "src_slot_name"}, {1, "dst_slot_name"}},
	"pg_copy_physical_replication_slot":   {{0, "src_slot_name"}, {1, "dst_slot_name"}},
	// Making a slot under a mirror's name would stand in its way.
	"pg_create_logical_replication_slot":  {{0, "slot_name"}},
	"pg_create_physical_replication_slot": {{0, "slot_name"}},
}

type slotParam struct {
	position int
	name     string
}

// publicationDDL finds DROP or ALTER PUBLICATION in a function body.
var publicationDDL = regexp.MustCompile(`(?is)\b(drop|alter)\s+publication\b`)

// planOf reads the guard's plan from the parse tree of a statement that
// starts at byte offset start of the text parsed: acts whose node has no
// location of its own (DROP PUBLICATION, ...) are placed there.
func planOf(n *pg_query.Node, start int) *guardPlan {
	p := &guardPlan{}
	p.add(n, start)
	return p
}

func (p *guardPlan) add(n *pg_query.Node, start int) {
	if n == nil {
		return
	}
	from := len(p.uses)
	walk(n.ProtoReflect(), func(m protoreflect.Message) bool {
		p.visit(m.Interface())
		return true
	})
	for i := from; i < len(p.uses); i++ {
		if p.uses[i].location < 0 {
			p.uses[i].location = start
		}
	}
}

func (p *guardPlan) visit(v any) {
	switch v := v.(type) {
	case *pg_query.FuncCall:
		f, ok := funcRefOf(v)
		if !ok {
			return
		}
		if v.GetFuncformat() != pg_query.CoercionForm_COERCE_SQL_SYNTAX {
			p.calls = append(p.calls, f)
		}
		if params, ok := slotFunctions[f.name]; ok && (f.schema == "" || f.schema == "pg_catalog") {
			for _, sp := range params {
				arg, ok := argOf(v.GetArgs(), sp)
				if !ok {
					continue
				}
				name, known, isNull := constantText(arg)
				if isNull {
					continue // a strict function given NULL does nothing
				}
				p.uses = append(p.uses, objectUse{kind: slotObject, what: f.name + "()", name: name, known: known,
					location: f.location})
			}
		}
	case *pg_query.DropStmt:
		if v.GetRemoveType() == pg_query.ObjectType_OBJECT_PUBLICATION {
			for _, o := range v.GetObjects() {
				p.publication("DROP PUBLICATION", o)
			}
		}
	case *pg_query.AlterPublicationStmt:
		p.uses = append(p.uses, objectUse{kind: publicationObject, what: "ALTER PUBLICATION", name: v.GetPubname(),
			known: true, location: -1})
	case *pg_query.RenameStmt:
		if v.GetRenameType() == pg_query.ObjectType_OBJECT_PUBLICATION {
			p.publication("ALTER PUBLICATION ... RENAME", v.GetObject())
		}
	case *pg_query.AlterOwnerStmt:
		if v.GetObjectType() == pg_query.ObjectType_OBJECT_PUBLICATION {
			p.publication("ALTER PUBLICATION ... OWNER TO", v.GetObject())
		}
	case *pg_query.CreateSubscriptionStmt:
		p.subscriptionSlot("CREATE SUBSCRIPTION", v.GetOptions())
	case *pg_query.AlterSubscriptionStmt:
		p.subscriptionSlot("ALTER SUBSCRIPTION", v.GetOptions())
	case *pg_query.DoStmt:
		p.bodies(v.GetArgs())
	case *pg_query.CreateFunctionStmt:
		p.bodies(v.GetOptions())
	}
}

// publication records an act on the publication named by node n.
func (p *guardPlan) publication(what string, n *pg_query.Node) {
	name := n.GetString_().GetSval()
	p.uses = append(p.uses, objectUse{kind: publicationObject, what: what, name: name, known: name != "", location: -1})
}

// subscriptionSlot records the slot a subscription is set to stream from
// (WITH (slot_name = ...)): it would consume that slot's changes.
func (p *guardPlan) subscriptionSlot(what string, opts []*pg_query.Node) {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || !strings.EqualFold(d.GetDefname(), "slot_name") {
			continue
		}
		name, known, isNull := constantText(d.GetArg())
		if !isNull {
			p.uses = append(p.uses, objectUse{kind: slotObject, what: what, name: name, known: known,
				location: int(d.GetLocation())})
		}
	}
}

// bodies looks at the text of a DO block or function body (the "as"
// option), which Sluice does not parse: a slot function or publication DDL
// named there is an act on an unknown object.
func (p *guardPlan) bodies(opts []*pg_query.Node) {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || d.GetDefname() != "as" {
			continue
		}
		var texts []string
		if s := d.GetArg().GetString_(); s != nil {
			texts = append(texts, s.GetSval())
		}
		for _, item := range d.GetArg().GetList().GetItems() {
			texts = append(texts, item.GetString_().GetSval())
		}
		for _, text := range texts {
			p.scanText(text, "a function body", int(d.GetLocation()))
		}
	}
}

// scanText records the slot functions and publication DDL that text, which
// Sluice does not parse, mentions: where describes it.
func (p *guardPlan) scanText(text, where string, location int) {
	lower := strings.ToLower(text)
	for _, fn := range sortedSlotFunctions {
		if strings.Contains(lower, fn) {
			p.uses = append(p.uses, objectUse{kind: slotObject, what: fn + "()", opaque: where, location: location})
		}
	}
	if publicationDDL.MatchString(text) {
		p.uses = append(p.uses, objectUse{kind: publicationObject, what: "DROP or ALTER PUBLICATION",
			opaque: where, location: location})
	}
}

// sortedSlotFunctions are slotFunctions' names in order, so that errors do
// not depend on map order.
var sortedSlotFunctions = func() []string {
	names := make([]string, 0, len(slotFunctions))
	for n := range slotFunctions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}()

// executePlan reads the guard's plan from EXECUTE's query string. A string
// Sluice cannot parse is judged by its text.
func executePlan(query string, parsed *pg_query.ParseResult) *guardPlan {
	if parsed == nil {
		p := &guardPlan{}
		p.scanText(query, "a statement Sluice cannot parse", -1)
		return p
	}
	p := &guardPlan{}
	for _, raw := range parsed.GetStmts() {
		p.add(raw.GetStmt(), int(raw.GetStmtLocation()))
	}
	return p
}

// funcRefOf reads a call's function name.
func funcRefOf(f *pg_query.FuncCall) (funcRef, bool) {
	names := f.GetFuncname()
	if len(names) == 0 {
		return funcRef{}, false
	}
	r := funcRef{name: names[len(names)-1].GetString_().GetSval(), location: int(f.GetLocation())}
	if len(names) > 1 {
		r.schema = names[len(names)-2].GetString_().GetSval()
	}
	return r, r.name != ""
}

// argOf returns the argument given for a parameter, by position or by name
// (name => value).
func argOf(args []*pg_query.Node, sp slotParam) (*pg_query.Node, bool) {
	for i, a := range args {
		if na := a.GetNamedArgExpr(); na != nil {
			if strings.EqualFold(na.GetName(), sp.name) {
				return na.GetArg(), true
			}
			continue
		}
		if i == sp.position {
			return a, true
		}
	}
	return nil, false
}

// constantText reads a string constant, possibly cast or given a collation
// ('sluice_m'::name). known is false for anything else (an expression, a
// column, a parameter); isNull reports a NULL constant.
func constantText(n *pg_query.Node) (s string, known, isNull bool) {
	for n != nil {
		switch {
		case n.GetTypeCast() != nil:
			n = n.GetTypeCast().GetArg()
		case n.GetCollateClause() != nil:
			n = n.GetCollateClause().GetArg()
		case n.GetAConst() != nil:
			c := n.GetAConst()
			if c.GetIsnull() {
				return "", false, true
			}
			if c.GetSval() != nil {
				return c.GetSval().GetSval(), true, false
			}
			return "", false, false
		case n.GetString_() != nil: // option values (WITH (slot_name = ...))
			return n.GetString_().GetSval(), true, false
		default:
			return "", false, false
		}
	}
	return "", false, false
}

// checkOwned refuses plan's statement if it acts on a slot or publication
// a mirror owns, or on one it does not name plainly while any mirror owns
// one of that kind. at maps a byte offset in the parsed text to a position
// in the client's query (0: none). The catalog is read only when the
// statement acts on slots or publications at all.
func (s *session) checkOwned(ctx context.Context, plan *guardPlan, at func(int) int) error {
	if plan == nil || len(plan.uses) == 0 {
		return nil
	}
	owned, err := s.ex.cfg.Store.OwnedObjects(ctx)
	if err != nil {
		return err
	}
	for _, u := range plan.uses {
		names := owned.Slots
		if u.kind == publicationObject {
			names = owned.Publications
		}
		if u.known {
			if mirror, ok := names[u.name]; ok {
				return errOwned(u, mirror).WithPosition(positionAt(at, u.location))
			}
			continue
		}
		if len(names) > 0 {
			return errUnknownObject(u).WithPosition(positionAt(at, u.location))
		}
	}
	return nil
}

// errOwned refuses an act on a mirror's slot or publication.
func errOwned(u objectUse, mirror string) *sqlerr.Error {
	return sqlerr.New(pgerrcode.InsufficientPrivilege, "%s %q belongs to mirror %q: %s is not allowed on it",
		u.kind, u.name, mirror, u.what).
		WithDetail("Consuming, advancing, copying, dropping or altering a mirror's slot or publication "+
			"would make it lose changes; only Sluice changes them. Nothing was sent to the server.").
		WithHint("Use PAUSE MIRROR, RESYNC MIRROR or DROP MIRROR %s.", quoteIdent(mirror))
}

// errUnknownObject refuses an act on a slot or publication Sluice cannot
// tell from a mirror's.
func errUnknownObject(u objectUse) *sqlerr.Error {
	if u.opaque != "" {
		return sqlerr.New(pgerrcode.InsufficientPrivilege,
			"%s that mentions %s cannot be checked: it might act on a mirror's %s", u.opaque, u.what, u.kind).
			WithDetail("Sluice does not read it, and mirrors own replication slots and publications " +
				"(SELECT name, slot_name, publication_name FROM mirrors). Nothing was sent to the server.").
			WithHint("Run it on the server directly, not through Sluice.")
	}
	return sqlerr.New(pgerrcode.InsufficientPrivilege,
		"cannot tell which %s %s acts on: it is not named by a string constant", u.kind, u.what).
		WithDetail("Mirrors own replication slots and publications (SELECT name, slot_name, publication_name "+
			"FROM mirrors), and Sluice refuses what it cannot show leaves them alone. Nothing was sent to the server.").
		WithHint("Name the %s with a string constant.", u.kind)
}

// positionAt maps a byte offset with at, or returns 0 when either is unknown.
func positionAt(at func(int) int, location int) int {
	if at == nil || location < 0 {
		return 0
	}
	return at(location)
}
