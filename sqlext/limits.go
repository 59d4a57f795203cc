package sqlext

import (
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// MaxDepth bounds how deeply a statement may nest, as estimated by
// checkDepth before Postgres' parser sees it. pg_query turns the parse tree
// into a protobuf message recursively in C, on the calling thread's stack,
// with no check of its own: a chain of about 23,800 binary operators (47,600
// levels of messages, about 175 bytes of stack each) overflows the default
// 8 MB stack and kills the process (about 5,900 operators with a 2 MB
// stack). One unit of the estimate is at most two levels of messages, so
// the limit stays under 0.8 MB of stack, a margin of about 10 at 8 MB, and
// under the 10,000 levels the protobuf decoder accepts. Postgres itself
// gives up on 3,000 to 5,000 chained operators ("stack depth limit
// exceeded") with its default max_stack_depth of 2 MB.
const MaxDepth = 2000

// MaxTokens bounds the size of a query string, in tokens, estimated from
// its text before it is scanned (see tokenBound). Scanning and parsing cost
// memory in proportion to the tokens, not to the bytes (a long string
// literal is one token, though the estimate counts its words): a flat list of a million constants, just under the
// limit, peaks at about 800 MB, a 100,000-row INSERT of three columns (1.1
// million by the estimate) at about 220 MB.
const MaxTokens = 2_000_000

// frameCost is what an opening parenthesis, bracket or CASE adds to the
// estimated depth: a subquery level costs Postgres' parser three times the
// stack of an operator, and is counted as its '(' and SELECT.
const frameCost = 2

// errTooComplex is the error for a statement nested deeper than MaxDepth, at
// the token where the estimate crossed the limit.
func errTooComplex(at token) *SyntaxError {
	return &SyntaxError{
		Code: pgerrcode.StatementTooComplex,
		Msg:  fmt.Sprintf("statement is too complex: it nests more than %d levels deep", MaxDepth),
		Hint: "Sluice refuses statements nested this deeply (parentheses, CASE, chains of operators, " +
			"casts, UNION or JOIN) before parsing them. Write a long chain of conditions as a list: " +
			"IN (...), = ANY(ARRAY[...]), or split the statement.",
		Pos: at.pos,
	}
}

// checkSize refuses a query string that may hold more than MaxTokens
// tokens, before any of it is scanned.
func checkSize(sql string) error {
	if n := tokenBound(sql); n > MaxTokens {
		return &SyntaxError{
			Code: pgerrcode.StatementTooComplex,
			Msg:  fmt.Sprintf("statement is too large: it may hold %d tokens, the limit is %d", n, MaxTokens),
			Hint: "Split it into several statements, or pass large values as parameters of a prepared statement.",
		}
	}
	return nil
}

// tokenBound returns an upper bound of the number of tokens in sql, without
// scanning it: every token starts either at a byte that is not blank and not
// part of a word (an operator, a quote, a digit after a dot) or at the first
// byte of a run of word bytes (letters, digits, '_', non-ASCII).
func tokenBound(sql string) int {
	n, inWord := 0, false
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			inWord = false
		case c == '_' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
			if !inWord {
				n++
			}
			inWord = true
		default:
			n++
			inWord = false
		}
	}
	return n
}

// depthFrame is one open parenthesis, bracket or CASE while checkDepth
// walks a statement, and the outermost level of the statement itself.
type depthFrame struct {
	closer pg_query.Token // ')', ']' or END; 0 for the statement
	// Chains that nest in the parse tree: set operations (never reset),
	// joins (reset by ','), and operators, casts and other keywords (reset by
	// any separator). maxJoins and maxOps are the longest seen so far.
	setOps, joins, ops, maxJoins, maxOps int
	boolean                              bool // AND or OR seen: a BoolExpr, and an OR over ANDs
	between                              bool // BETWEEN seen, its AND not yet
	child                                int  // the deepest frame closed inside this one
}

// cost is the frame's own share of the estimate, without its children.
func (f *depthFrame) cost() int {
	c := frameCost + f.setOps + max(f.joins, f.maxJoins) + max(f.ops, f.maxOps)
	if f.boolean {
		c += 2
	}
	return c
}

// endItem ends a list item or operand: the operators before it no longer
// nest what follows.
func (f *depthFrame) endItem() {
	f.maxOps = max(f.maxOps, f.ops)
	f.ops = 0
}

// endJoins ends a FROM item.
func (f *depthFrame) endJoins() {
	f.maxJoins = max(f.maxJoins, f.joins)
	f.joins = 0
}

// checkDepth estimates, from one statement's tokens (toks, ended by its
// terminator), an upper bound of the depth of its parse tree, and refuses
// the statement when it passes MaxDepth. It costs time linear in the tokens
// and memory linear in the nesting, never more than MaxDepth/frameCost
// frames.
//
// The estimate of a frame is frameCost, plus every UNION, INTERSECT and
// EXCEPT in it, plus the longest chain of JOINs, plus the longest run of
// tokens that may nest (operators, casts, keywords such as NOT, IS, COLLATE,
// AT) between two separators, plus the deepest frame inside it. Separators
// are what Postgres' grammar keeps flat: ',' (list items), AND and OR (one
// BoolExpr with a list of arguments; the AND of a BETWEEN is not one), WHEN,
// THEN and ELSE (a CASE's list of arms), set operations, JOIN and ON.
// Identifiers, constants and '.' never nest. Within a frame the parts are
// added, not combined by position, so the estimate only errs upwards.
func checkDepth(toks []token) error {
	if est, at := estimateDepth(toks); est > MaxDepth {
		return errTooComplex(at)
	}
	return nil
}

// estimateDepth returns checkDepth's estimate for toks, or, as soon as the
// estimate passes MaxDepth, a value above it and the token where it did.
func estimateDepth(toks []token) (int, token) {
	stack := []depthFrame{{}}
	base := 0                        // the cost of every frame below the top
	open := map[pg_query.Token]int{} // open frames by closer
	for _, t := range toks[:len(toks)-1] {
		top := &stack[len(stack)-1]
		switch t.kind {
		case tokLParen, tokLBracket, pg_query.Token_CASE:
			if t.kind == pg_query.Token_CASE {
				top.ops++ // the CASE itself is an operand of what holds it
			}
			base += top.cost()
			closer := closerOf(t.kind)
			open[closer]++
			stack = append(stack, depthFrame{closer: closer})
			top = &stack[len(stack)-1]
		case tokRParen, tokRBracket, pg_query.Token_END_P:
			// A closer with no opener is left to Postgres' parser to refuse;
			// END closes only a CASE directly inside (else it ends a BEGIN
			// ATOMIC body, or is a statement). A ')' closes the CASEs and
			// brackets left open inside it.
			if open[t.kind] == 0 || t.kind == pg_query.Token_END_P && top.closer != t.kind {
				top.ops++
				break
			}
			for done := false; !done; {
				f := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				open[f.closer]--
				parent := &stack[len(stack)-1]
				base -= parent.cost()
				parent.child = max(parent.child, f.cost()+f.child)
				done = f.closer == t.kind
			}
			top = &stack[len(stack)-1]
		case tokComma:
			top.endItem()
			top.endJoins()
		case pg_query.Token_AND, pg_query.Token_OR:
			if t.kind == pg_query.Token_AND && top.between {
				top.between = false
				top.ops++
				break
			}
			top.boolean = true
			top.endItem()
		case pg_query.Token_BETWEEN:
			top.between = true
			top.ops++
		case pg_query.Token_WHEN, pg_query.Token_THEN, pg_query.Token_ELSE, pg_query.Token_ON:
			top.endItem()
		case pg_query.Token_UNION, pg_query.Token_INTERSECT, pg_query.Token_EXCEPT:
			top.setOps++
			top.endItem()
			top.endJoins()
		case pg_query.Token_JOIN:
			top.joins++
			top.endItem()
		case pg_query.Token_IDENT, pg_query.Token_UIDENT, pg_query.Token_ICONST, pg_query.Token_FCONST,
			pg_query.Token_SCONST, pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST,
			pg_query.Token_PARAM, tokDot:
		default:
			top.ops++
		}
		if est := base + top.cost() + top.child; est > MaxDepth {
			return est, t
		}
	}
	// Close what is left open, as Postgres' parser would refuse it anyway.
	est := 0
	for i := len(stack) - 1; i >= 0; i-- {
		est = stack[i].cost() + max(stack[i].child, est)
	}
	return est, toks[len(toks)-1]
}

// closerOf returns the token that closes a frame opened by kind.
func closerOf(kind pg_query.Token) pg_query.Token {
	switch kind {
	case tokLParen:
		return tokRParen
	case tokLBracket:
		return tokRBracket
	default:
		return pg_query.Token_END_P
	}
}

// isRecursionLimit reports whether err is the protobuf decoder refusing a
// tree nested deeper than it accepts, which checkDepth should have caught.
func isRecursionLimit(err error) bool {
	return strings.Contains(err.Error(), "exceeded maximum recursion depth")
}
