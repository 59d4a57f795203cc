package clickhouse

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
	"github.com/sluicedb/sluice/connectors"
)

func TestDefaultLiteral(t *testing.T) {
	old := ServerInfo{Major: 18, Minor: 16}
	null := connectors.Value{Kind: connectors.Null}
	cases := []struct {
		name string
		col  connectors.Column
		val  connectors.Value
		want string
		err  string
	}{
		{"int", connectors.Column{Type: "integer", TypeOID: pgtype.Int4OID}, encode(t, pgtype.Int4OID, int32(5)), "5", ""},
		{"text", connectors.Column{Type: "text", TypeOID: pgtype.TextOID}, encode(t, pgtype.TextOID, "it's"), `'it\'s'`, ""},
		{"numeric", connectors.Column{Type: "numeric(12,2)", TypeOID: pgtype.NumericOID},
			encode(t, pgtype.NumericOID, decimal.RequireFromString("1.5")), "toDecimal128('1.50', 2)", ""},
		{"bool", connectors.Column{Type: "boolean", TypeOID: pgtype.BoolOID, NotNull: true}, encode(t, pgtype.BoolOID, true), "1", ""},
		{"null nullable", connectors.Column{Type: "integer", TypeOID: pgtype.Int4OID}, null, "NULL", ""},
		{"null not null", connectors.Column{Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true}, null, "", "NULL default"},
		{"array", connectors.Column{Type: "integer[]", TypeOID: pgtype.Int4ArrayOID}, encode(t, pgtype.Int4ArrayOID, []int32{1}), "", "array"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			m, err := mapColumn(tt.col, false, old)
			if err != nil {
				t.Fatal(err)
			}
			got, err := defaultLiteral(&m, tt.val)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestBaseOf(t *testing.T) {
	for in, want := range map[string]string{
		"Nullable(Int32)":          "Int32",
		"Int32":                    "Int32",
		"Decimal(12, 2)":           "Decimal(12,2)",
		"Nullable(Decimal(12, 2))": "Decimal(12,2)",
		"Array(Nullable(String))":  "Array(Nullable(String))",
	} {
		if got := baseOf(in); got != want {
			t.Errorf("baseOf(%q) = %q, want %q", in, got, want)
		}
	}
}
