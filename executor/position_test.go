package executor

import (
	"strings"
	"testing"

	"github.com/sluicedb/sluice/sqlext"
)

func TestLiteralIndex(t *testing.T) {
	tests := []struct {
		raw, value string
		ok         bool
	}{
		{`'SELECT 1'`, "SELECT 1", true},
		{`'it''s'`, "it's", true},
		{"'a'\n'b'", "ab", true},
		{`$$x 'y'$$`, "x 'y'", true},
		{`$q$x$$y$q$`, "x$$y", true},
		{`'ü, nope'`, "ü, nope", true},
		{`E'a\nb'`, "a\nb", false},
		{`U&'\0041'`, "A", false},
		{`'abc'`, "abd", false}, // not the literal of that value
	}
	for _, tt := range tests {
		index := literalIndex(tt.raw, tt.value)
		if (index != nil) != tt.ok {
			t.Errorf("literalIndex(%q) = %v", tt.raw, index)
			continue
		}
		if index == nil {
			continue
		}
		if len(index) != len(tt.value)+1 {
			t.Errorf("literalIndex(%q): %d offsets for %d bytes", tt.raw, len(index), len(tt.value))
		}
		// Every byte of the value maps to itself in the literal, except a
		// quote, which maps to the first of its two.
		for i := 0; i < len(tt.value); i++ {
			if tt.raw[index[i]] != tt.value[i] {
				t.Errorf("literalIndex(%q): byte %d maps to %q", tt.raw, i, tt.raw[index[i]])
			}
		}
	}
}

func TestStrippedPositions(t *testing.T) {
	full := "SELECT 1; SELECT ü FROM src.public.t JOIN src . public.u ON nope"
	off := strings.Index(full, "SELECT ü")
	text := full[off:]
	refs := []peerRef{{"src", strings.Index(text, "src.")}, {"src", strings.Index(text, "src .")}}
	spans := qualifierSpans(text, refs)
	stripped := removeSpans(text, spans)
	if stripped != "SELECT ü FROM public.t JOIN public.u ON nope" {
		t.Fatalf("stripped = %q", stripped)
	}
	f := strippedPositions(full, off, text, spans)
	for _, at := range []string{"public.t", "public.u", "nope", "ü"} {
		pos := len([]rune(stripped[:strings.Index(stripped, at)])) + 1
		want := []rune(full)
		got := f(pos)
		var wantAt string
		switch at {
		case "public.t":
			wantAt = "src.public.t"
		case "public.u":
			wantAt = "src . public.u"
		default:
			wantAt = at
		}
		if w := len([]rune(full[:strings.Index(full, wantAt)])) + 1; got != w {
			t.Errorf("%s: position %d maps to %d (%q), want %d", at, pos, got, string(want[got-1:]), w)
		}
	}
}

func TestQueryLiteral(t *testing.T) {
	full := "SELECT 1; /* c */ EXECUTE \"Pé\"( 'x''y' )"
	stmts, err := sqlext.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	st := stmts[1].(*sqlext.ExecutePeer)
	raw, pos, ok := st.QueryLiteral()
	if !ok || raw != "'x''y'" || string([]rune(full)[pos-1:pos+5]) != raw {
		t.Fatalf("QueryLiteral = %q at %d, %v", raw, pos, ok)
	}
	if tp := st.TextPos(); string([]rune(full)[tp-1:tp+6]) != "EXECUTE" {
		t.Fatalf("TextPos = %d", tp)
	}
	if got := literalPositions(st)(3); string([]rune(full)[got-1]) != "y" {
		t.Fatalf("position 3 of %q maps to %d", st.Query, got)
	}

	// PeerDB's double-quoted form maps the same way.
	full = `SELECT 1; EXECUTE "Pé"( "SELECT ""é"" nosuch" )`
	stmts, err = sqlext.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	st = stmts[1].(*sqlext.ExecutePeer)
	if st.Query != `SELECT "é" nosuch` {
		t.Fatalf("Query = %q", st.Query)
	}
	raw, pos, ok = st.QueryLiteral()
	if !ok || raw != `"SELECT ""é"" nosuch"` || string([]rune(full)[int(pos)-1:int(pos)-1+len([]rune(raw))]) != raw {
		t.Fatalf("QueryLiteral = %q at %d, %v", raw, pos, ok)
	}
	at := strings.Index(st.Query, "nosuch") + 1
	if got := literalPositions(st)(len([]rune(st.Query[:at]))); string([]rune(full)[got-1:got+5]) != "nosuch" {
		t.Fatalf("position of nosuch in %q maps to %d", st.Query, got)
	}
}
