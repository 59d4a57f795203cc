package clickhouse

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestInvalidText(t *testing.T) {
	for _, tc := range []struct {
		in  string
		bad byte
		ok  bool
	}{
		{"", 0, false},
		{"plain ascii", 0, false},
		{"ü € 𝄞", 0, false},
		{"a\x00b", 0x00, true},
		{"A\xffB", 0xff, true},
		{"\x80", 0x80, true},
		{"ok \xe2\x28\xa1", 0xe2, true}, // a three-byte sequence cut short
		{"\xed\xa0\x80", 0xed, true},    // a surrogate
	} {
		bad, ok := invalidText([]byte(tc.in))
		if ok != tc.ok || bad != tc.bad {
			t.Errorf("invalidText(%q) = %#x, %v; want %#x, %v", tc.in, bad, ok, tc.bad, tc.ok)
		}
	}
}

func TestByteaMark(t *testing.T) {
	b := chBytea{"thumbnail": true}
	names := []string{"thumbnail", "o.thumbnail", "thumbnail", "note", "thumbnail"}
	types := []chType{chTypeOf("Nullable(String)"), chTypeOf("String"), chTypeOf("Array(String)"), chTypeOf("String"),
		chTypeOf("UInt64")}
	b.mark(names, types)
	want := []uint32{pgtype.ByteaOID, pgtype.ByteaOID, pgtype.TextArrayOID, pgtype.TextOID, pgtype.NumericOID}
	for i := range types {
		if types[i].oid != want[i] {
			t.Errorf("column %d (%s %s): oid %d, want %d", i, names[i], types[i].name, types[i].oid, want[i])
		}
	}
	if got := string(byteaValue([]byte{0, 0x80, 0xff}, pgtype.TextFormatCode)); got != `\x0080ff` {
		t.Errorf("text form %q", got)
	}
	if got := byteaValue([]byte{0, 0x80, 0xff}, pgtype.BinaryFormatCode); string(got) != "\x00\x80\xff" {
		t.Errorf("binary form %q", got)
	}
}
