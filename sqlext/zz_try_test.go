package sqlext

import (
	"fmt"
	"testing"
)

func TestZZTry(t *testing.T) {
	for _, s := range []string{
		"SELECT 1; CREATE PEER IF NOT EXISTS \"Pg\" FROM postgres WITH (host = 'h', port = 5432, user='u', x = -1.5, b = TRUE, s = swap); select 2",
		"create mirror m from a to b with table mapping ({from: a.b, to: c.d, exclude: [x,y], key: id}, a.b:\"C\".d) with (do_initial_copy = true)",
		"execute pg('select 1'); execute q(1); execute mirror m; resync table m.s.t with (a=1); pause mirror if exists m; resume mirror m; drop mirror m with (x=1); drop peer if exists p; resync mirror m",
		"create peer p from oracle",
		"select 'é' frm x",
		"select 1; select 'é' frm x",
		"select 1 +; select 2",
		"select 1 +",
		"create peer p from",
		"select 1; select 'unterminated",
		"select frm frm; select 'unterminated",
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; select 3",
		"create peer p from postgres with (password = E'\\xff')",
		"create peer p from postgres with (password = U&'d\\0061t', y = U&'d!0061t' UESCAPE '!', z = $$a;b$$, w = 'a'\n'b')",
	} {
		st, err := Parse(s)
		fmt.Printf("%q\n  err=%#v\n", s, err)
		for _, x := range st {
			fmt.Printf("  %T %+v\n", x, x)
		}
	}
}
