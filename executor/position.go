package executor

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// Positions in errors are 1-based character positions in the text the
// client sent. A backend reports them in the text it was sent, which may be
// one statement of a longer query string, a statement with peer qualifiers
// removed, or the value of EXECUTE's string literal: the functions here map
// them back.

// charPos returns the 1-based character position of byte offset off in s.
func charPos(s string, off int) int {
	return utf8.RuneCountInString(s[:off]) + 1
}

// byteOffset returns the byte offset in s of the 1-based character position
// pos, or len(s) when pos is past the end.
func byteOffset(s string, pos int) int {
	n := 1
	for i := range s {
		if n == pos {
			return i
		}
		n++
	}
	return len(s)
}

// mapPosition returns err with the position of a backend's error mapped by
// f from the text sent to the backend to the client's text; f returns 0
// when there is no right answer, and the error then has no position.
// Errors of Sluice's own, and errors without a position, are returned as
// they are.
func mapPosition(err error, f func(pos int) int) error {
	var own *sqlerr.Error
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &own) || !errors.As(err, &pe) || pe.Position == 0 {
		return err
	}
	e := sqlerr.From(err)
	cp := *e
	cp.Position = f(int(pe.Position))
	return &cp
}

// offsetPositions maps positions in a statement that starts at byte offset
// off of full.
func offsetPositions(full string, off int) func(int) int {
	base := charPos(full, off) - 1
	return func(pos int) int { return base + pos }
}

// span is a byte range [start, end) of a statement's text.
type span struct{ start, end int }

// strippedPositions maps positions in text with spans removed (in order,
// not overlapping) back to full, where text starts at byte offset off. A
// position just after a removed span points at the span's start, so an
// error about public.t in peer.public.t points at peer.
func strippedPositions(full string, off int, text string, spans []span) func(int) int {
	stripped := removeSpans(text, spans)
	return func(pos int) int {
		b := byteOffset(stripped, pos)
		o, removed := b, 0
		for _, sp := range spans {
			if sp.start-removed >= b {
				break
			}
			o += sp.end - sp.start
			removed += sp.end - sp.start
		}
		return charPos(full, off+o)
	}
}

// removeSpans returns text without spans.
func removeSpans(text string, spans []span) string {
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(text[last:sp.start])
		last = sp.end
	}
	b.WriteString(text[last:])
	return b.String()
}

// literalPositions maps positions in EXECUTE's query (the literal's value)
// to the literal as the client wrote it. Only a standard '...' string
// (doubled quotes), PeerDB's "..." and a dollar-quoted one can be mapped; for others
// (E'...' with its escapes, U&'...') positions are dropped rather than
// wrong.
func literalPositions(st *sqlext.ExecutePeer) func(int) int {
	raw, litPos, ok := st.QueryLiteral()
	var index []int
	if ok {
		index = literalIndex(raw, st.Query)
	}
	return func(pos int) int {
		if index == nil {
			return 0
		}
		return int(litPos) + utf8.RuneCountInString(raw[:index[byteOffset(st.Query, pos)]])
	}
}

// literalIndex returns, for each byte offset in value (and one past its
// end), the byte offset in raw, the string literal it was decoded from; nil
// if raw is not a standard or dollar-quoted literal of value.
func literalIndex(raw, value string) []int {
	index := make([]int, 0, len(value)+1)
	switch {
	case strings.HasPrefix(raw, "$"):
		k := strings.IndexByte(raw[1:], '$') + 1
		if k <= 0 || len(raw) < 2*(k+1) || raw[:k+1] != raw[len(raw)-k-1:] || raw[k+1:len(raw)-k-1] != value {
			return nil
		}
		for i := 0; i <= len(value); i++ {
			index = append(index, k+1+i)
		}
		return index
	case strings.HasPrefix(raw, "'"), strings.HasPrefix(raw, `"`):
		// '...' with doubled quotes, or PeerDB's "..." with doubled
		// double quotes.
		q := raw[0]
		var got strings.Builder
		i := 1
		for i < len(raw) {
			if raw[i] != q {
				got.WriteByte(raw[i])
				index = append(index, i)
				i++
				continue
			}
			if i+1 < len(raw) && raw[i+1] == q {
				got.WriteByte(q)
				index = append(index, i)
				i += 2
				continue
			}
			// The end of the literal, or of one part of 'a'\n'b'.
			next := strings.IndexByte(raw[i+1:], q)
			if next < 0 {
				break
			}
			i += next + 2
		}
		index = append(index, len(raw)-1)
		if got.String() != value {
			return nil
		}
		return index
	}
	return nil
}
