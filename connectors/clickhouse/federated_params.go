package clickhouse

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgtype"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Parameters of a query on a ClickHouse peer are bound by Sluice: each $n
// is replaced by a ClickHouse literal of its value (ClickHouse has no
// parameters of the Postgres kind). A parameter's type, as described to the
// client, is the one the client declared; else that of the column it is
// compared with (col = $1, col IN ($1, $2), col BETWEEN $1 AND $2), so that
// a client sending an integer for an Int64 column sends an int8 and the
// literal is a number (ClickHouse 18.16 refuses Int64 = '5'); else the type
// of an explicit CAST($1 AS Int64); an integer for LIMIT and OFFSET; and
// text otherwise, bound as a string literal.

// chParamRef is one $n in a statement's text.
type chParamRef struct {
	start, end int // byte range of "$n"
	n          int // 1-based parameter number
}

// chParams is what a statement's parameters need: where they are and what
// decides their types.
type chParams struct {
	refs  []chParamRef
	count int // number of parameters: the highest $n
	// fixed are types known from the statement alone (LIMIT, OFFSET, CAST).
	fixed map[int]uint32
	// columns are the column references each parameter is compared with,
	// as name parts (e.g. ["o", "id"]), and tables the statement's tables.
	columns map[int][][]string
	tables  []queryTable
}

// queryTable is a table named in a statement: database (empty: the peer's),
// table and alias, as the Postgres parser read them (unquoted names in
// lower case).
type queryTable struct{ db, table, alias string }

// chParamsOf finds the parameters of sql, a statement Postgres' parser
// accepts (the peer qualifiers removed).
func chParamsOf(sql string) (*chParams, error) {
	tree, err := sqlext.ParseTree(sql)
	if err != nil {
		var se *sqlext.SyntaxError
		if errors.As(err, &se) && se.Code != "" {
			return nil, se.SQLError()
		}
		return nil, sqlerr.New(pgerrcode.SyntaxError, "%v", err)
	}
	p := &chParams{fixed: map[int]uint32{}, columns: map[int][][]string{}}
	for _, raw := range tree.GetStmts() {
		sqlext.Walk(raw.ProtoReflect(), func(m protoreflect.Message) bool {
			switch v := m.Interface().(type) {
			case *pg_query.ParamRef:
				p.addRef(sql, v)
			case *pg_query.RangeVar:
				alias := v.GetAlias().GetAliasname()
				if strings.EqualFold(alias, "final") {
					alias = "" // ClickHouse's FINAL, which Postgres' parser reads as an alias
				}
				p.tables = append(p.tables, queryTable{db: v.GetSchemaname(), table: v.GetRelname(), alias: alias})
			case *pg_query.SelectStmt:
				for _, n := range []*pg_query.Node{v.GetLimitCount(), v.GetLimitOffset()} {
					if pr := n.GetParamRef(); pr != nil {
						p.fixed[int(pr.GetNumber())] = pgtype.Int8OID
					}
				}
			case *pg_query.TypeCast:
				if pr := v.GetArg().GetParamRef(); pr != nil {
					if oid := castOID(v.GetTypeName()); oid != 0 {
						p.fixed[int(pr.GetNumber())] = oid
					}
				}
			case *pg_query.A_Expr:
				p.addComparison(v)
			}
			return true
		})
	}
	sort.Slice(p.refs, func(i, j int) bool { return p.refs[i].start < p.refs[j].start })
	return p, nil
}

func (p *chParams) addRef(sql string, v *pg_query.ParamRef) {
	start := int(v.GetLocation())
	if start < 0 || start >= len(sql) || sql[start] != '$' {
		return
	}
	end := start + 1
	for end < len(sql) && sql[end] >= '0' && sql[end] <= '9' {
		end++
	}
	n := int(v.GetNumber())
	p.refs = append(p.refs, chParamRef{start: start, end: end, n: n})
	p.count = max(p.count, n)
}

// addComparison notes parameters compared with a column reference.
func (p *chParams) addComparison(e *pg_query.A_Expr) {
	var operands []*pg_query.Node
	switch e.GetKind() {
	case pg_query.A_Expr_Kind_AEXPR_OP:
		if len(e.GetName()) != 1 {
			return
		}
		switch e.GetName()[0].GetString_().GetSval() {
		case "=", "<>", "!=", "<", "<=", ">", ">=":
		default:
			return
		}
		operands = []*pg_query.Node{e.GetRexpr()}
	case pg_query.A_Expr_Kind_AEXPR_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT:
		operands = []*pg_query.Node{e.GetRexpr()}
	case pg_query.A_Expr_Kind_AEXPR_IN, pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN,
		pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		operands = e.GetRexpr().GetList().GetItems()
	default:
		return
	}
	col := columnFields(e.GetLexpr())
	if col == nil && len(operands) == 1 && e.GetKind() != pg_query.A_Expr_Kind_AEXPR_IN {
		// $1 = col
		if pr := e.GetLexpr().GetParamRef(); pr != nil {
			if c := columnFields(operands[0]); c != nil {
				p.columns[int(pr.GetNumber())] = append(p.columns[int(pr.GetNumber())], c)
			}
		}
		return
	}
	if col == nil {
		return
	}
	for _, op := range operands {
		if pr := op.GetParamRef(); pr != nil {
			p.columns[int(pr.GetNumber())] = append(p.columns[int(pr.GetNumber())], col)
		}
	}
}

// columnFields returns the name parts of a column reference, or nil.
func columnFields(n *pg_query.Node) []string {
	cr := n.GetColumnRef()
	if cr == nil {
		return nil
	}
	var out []string
	for _, f := range cr.GetFields() {
		s := f.GetString_()
		if s == nil {
			return nil
		}
		out = append(out, s.GetSval())
	}
	return out
}

// castOID is the Postgres type of CAST(... AS t): a ClickHouse type name
// (Int64, DateTime, ...; Postgres' parser gives it in lower case) or one of
// the SQL type keywords (bigint, integer, boolean, ...).
func castOID(tn *pg_query.TypeName) uint32 {
	names := tn.GetNames()
	if len(tn.GetArrayBounds()) > 0 || len(names) == 0 {
		return 0
	}
	last := names[len(names)-1].GetString_().GetSval()
	if len(names) == 2 && names[0].GetString_().GetSval() == "pg_catalog" {
		return sqlTypeOIDs[last]
	}
	if len(names) != 1 {
		return 0
	}
	for family, oid := range chScalarOIDs {
		if strings.EqualFold(family, last) {
			return oid
		}
	}
	return 0
}

// sqlTypeOIDs are the SQL type keywords Postgres' parser turns into
// pg_catalog names (bigint is pg_catalog.int8, ...).
var sqlTypeOIDs = map[string]uint32{
	"int2": pgtype.Int2OID, "int4": pgtype.Int4OID, "int8": pgtype.Int8OID, "float4": pgtype.Float4OID,
	"float8": pgtype.Float8OID, "numeric": pgtype.NumericOID, "bool": pgtype.BoolOID,
	"varchar": pgtype.TextOID, "bpchar": pgtype.TextOID, "timestamptz": pgtype.TimestamptzOID,
}

// chColumn is a column of a ClickHouse table.
type chColumn struct {
	current   bool // the table is in the connection's database
	db, table string
	name, typ string
}

// paramOIDs returns the types of the parameters: the declared ones (0 for
// none), else inferred, else text. columns are the columns of the
// statement's tables (see columnQuery).
func (p *chParams) paramOIDs(declared []uint32, columns []chColumn) []uint32 {
	oids := make([]uint32, max(p.count, len(declared)))
	for i := range oids {
		n := i + 1
		switch {
		case i < len(declared) && declared[i] != 0:
			oids[i] = declared[i]
		case p.fixed[n] != 0:
			oids[i] = p.fixed[n]
		default:
			oids[i] = pgtype.TextOID
			if typ, ok := p.columnType(n, columns); ok {
				t := chTypeOf(typ)
				if t.elem == nil && chScalarOIDs[t.base] != 0 {
					oids[i] = t.oid
				}
			}
		}
	}
	return oids
}

// columnType returns the ClickHouse type of the columns parameter n is
// compared with, if they resolve to one type.
func (p *chParams) columnType(n int, columns []chColumn) (string, bool) {
	typ := ""
	for _, ref := range p.columns[n] {
		name := ref[len(ref)-1]
		var quals []string
		if len(ref) > 1 {
			quals = ref[:len(ref)-1]
		}
		for _, t := range p.tables {
			if !t.matches(quals) {
				continue
			}
			for _, c := range columns {
				if !strings.EqualFold(c.name, name) || !strings.EqualFold(c.table, t.table) ||
					(t.db == "" && !c.current) || (t.db != "" && !strings.EqualFold(c.db, t.db)) {
					continue
				}
				if typ != "" && typ != c.typ {
					return "", false
				}
				typ = c.typ
			}
		}
	}
	return typ, typ != ""
}

// matches reports whether a column qualified by quals (none, table or
// alias, or database and table) can belong to t.
func (t queryTable) matches(quals []string) bool {
	switch len(quals) {
	case 0:
		return true
	case 1:
		if t.alias != "" {
			return strings.EqualFold(quals[0], t.alias)
		}
		return strings.EqualFold(quals[0], t.table)
	case 2:
		return t.alias == "" && strings.EqualFold(quals[0], t.db) && strings.EqualFold(quals[1], t.table)
	}
	return false
}

// columnQuery returns the ClickHouse query that reads the columns the
// inference needs, or "" when no parameter is compared with a column.
// Its rows are: in the connection's database (0/1), database, table,
// column name, type.
func (p *chParams) columnQuery() string {
	if len(p.columns) == 0 || len(p.tables) == 0 {
		return ""
	}
	seen := map[string]bool{}
	var names []string
	for _, t := range p.tables {
		name := quoteCHString(strings.ToLower(t.table))
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return "SELECT toUInt8(database = currentDatabase()), database, table, name, type FROM system.columns " +
		"WHERE lower(table) IN (" + strings.Join(names, ", ") + ")"
}

// bind returns sql with each parameter replaced by lits[n-1].
func (p *chParams) bind(sql string, lits []string) string {
	var b strings.Builder
	last := 0
	for _, r := range p.refs {
		b.WriteString(sql[last:r.start])
		b.WriteString(lits[r.n-1])
		last = r.end
	}
	b.WriteString(sql[last:])
	return b.String()
}

// placeholders are the literals a statement is described with: zero for
// numbers (LIMIT takes no NULL), NULL otherwise.
func placeholders(oids []uint32) []string {
	lits := make([]string, len(oids))
	for i, oid := range oids {
		lits[i] = "NULL"
		switch oid {
		case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID,
			pgtype.NumericOID, pgtype.BoolOID:
			lits[i] = "0"
		}
	}
	return lits
}

var numericLiteral = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// chLiteral renders a parameter value, sent by the client in format as type
// oid, as a ClickHouse literal: a number for the number types, 1 or 0 for
// boolean, toDateTime(..., 'UTC') for timestamptz, a string literal of the
// Postgres text form otherwise.
func chLiteral(m *pgtype.Map, oid uint32, format int16, b []byte) (string, error) {
	if b == nil {
		return "NULL", nil
	}
	text := string(b)
	if format == pgtype.BinaryFormatCode && !textLike(oid) {
		typ, ok := m.TypeForOID(oid)
		if !ok {
			return "", sqlerr.New(pgerrcode.FeatureNotSupported,
				"binary parameters of type OID %d are not supported on a ClickHouse peer", oid).
				WithHint("Send the parameter in text format.")
		}
		v, err := typ.Codec.DecodeValue(m, oid, pgtype.BinaryFormatCode, b)
		if err != nil {
			return "", sqlerr.New(pgerrcode.InvalidBinaryRepresentation, "read %s parameter: %v", typ.Name, err)
		}
		enc, err := m.Encode(oid, pgtype.TextFormatCode, v, nil)
		if err != nil {
			return "", sqlerr.New(pgerrcode.InvalidBinaryRepresentation, "read %s parameter: %v", typ.Name, err)
		}
		text = string(enc)
	}
	bad := func(typ string) error {
		return sqlerr.New(pgerrcode.InvalidTextRepresentation, "invalid input syntax for type %s: %q", typ, text)
	}
	signed := func(s string) string {
		if strings.HasPrefix(s, "-") {
			return "(" + s + ")" // not a -- comment after a minus
		}
		return s
	}
	t := strings.TrimSpace(text)
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return "", bad("integer")
		}
		return signed(strconv.FormatInt(n, 10)), nil
	case pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID:
		switch strings.ToLower(t) {
		case "nan":
			return "nan", nil
		case "infinity", "inf", "+infinity":
			return "inf", nil
		case "-infinity", "-inf":
			return "(-inf)", nil
		}
		if !numericLiteral.MatchString(t) {
			return "", bad("numeric")
		}
		return signed(strings.TrimPrefix(t, "+")), nil
	case pgtype.BoolOID:
		switch strings.ToLower(t) {
		case "t", "true", "yes", "y", "on", "1":
			return "1", nil
		case "f", "false", "no", "n", "off", "0":
			return "0", nil
		}
		return "", bad("boolean")
	case pgtype.TimestamptzOID:
		typ, _ := m.TypeForOID(oid)
		v, err := typ.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, []byte(t))
		ts, ok := v.(time.Time)
		if err != nil || !ok {
			return "", bad("timestamp with time zone")
		}
		ts = ts.UTC()
		if ts.Nanosecond() == 0 {
			return fmt.Sprintf("toDateTime('%s', 'UTC')", ts.Format("2006-01-02 15:04:05")), nil
		}
		return fmt.Sprintf("toDateTime64('%s', 6, 'UTC')", ts.Format("2006-01-02 15:04:05.000000")), nil
	case pgtype.InetOID:
		if pfx, err := netip.ParsePrefix(t); err == nil && pfx.IsSingleIP() {
			return quoteCHString(pfx.Addr().String()), nil
		}
	}
	return quoteCHString(text), nil
}

// textLike reports whether a type's binary form is its text.
func textLike(oid uint32) bool {
	switch oid {
	case 0, pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UnknownOID:
		return true
	}
	return false
}
