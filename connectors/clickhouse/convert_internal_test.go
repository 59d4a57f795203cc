package clickhouse

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/connectors"
)

func encode(t *testing.T, oid uint32, v any) connectors.Value {
	t.Helper()
	b, err := pgtype.NewMap().Encode(oid, pgtype.BinaryFormatCode, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	return connectors.Value{Kind: connectors.Binary, Data: b}
}

func TestConvertEdges(t *testing.T) {
	old := ServerInfo{Major: 18, Minor: 16}
	cases := []struct {
		name string
		col  connectors.Column
		v    any // encoded with col.TypeOID
		want string
		err  string
	}{
		{"timestamp BC", connectors.Column{Type: "timestamp", TypeOID: pgtype.TimestampOID},
			time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC), "0044-03-15 12:00:00.000000 BC", ""},
		{"timestamp infinity", connectors.Column{Type: "timestamp", TypeOID: pgtype.TimestampOID},
			pgtype.Timestamp{InfinityModifier: pgtype.Infinity, Valid: true}, "infinity", ""},
		{"timestamptz before 1970", connectors.Column{Type: "timestamptz", TypeOID: pgtype.TimestamptzOID},
			time.Date(1950, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600)), "1950-01-02 02:04:05.000006", ""},
		{"date before 1970", connectors.Column{Name: "born", Type: "date", TypeOID: pgtype.DateOID},
			time.Date(1950, 1, 2, 0, 0, 0, 0, time.UTC), "1950-01-02", ""},
		{"date infinity", connectors.Column{Name: "until", Type: "date", TypeOID: pgtype.DateOID},
			pgtype.Date{InfinityModifier: pgtype.Infinity, Valid: true}, "infinity", ""},
		{"numeric NaN in a Decimal", connectors.Column{Type: "numeric(10,2)", TypeOID: pgtype.NumericOID},
			pgtype.Numeric{NaN: true, Valid: true}, "", "NaN"},
		{"numeric NaN as text", connectors.Column{Type: "numeric", TypeOID: pgtype.NumericOID},
			pgtype.Numeric{NaN: true, Valid: true}, "NaN", ""},
		{"negative interval", connectors.Column{Type: "interval", TypeOID: pgtype.IntervalOID},
			pgtype.Interval{Days: -1, Microseconds: -1500000, Valid: true}, "-1 days -00:00:01.5", ""},
		{"zero interval", connectors.Column{Type: "interval", TypeOID: pgtype.IntervalOID},
			pgtype.Interval{Valid: true}, "00:00:00", ""},
		{"2-d array", connectors.Column{Type: "integer[]", TypeOID: pgtype.Int4ArrayOID},
			[][]int32{{1, 2}, {3, 4}}, "", "2-dimensional"},
		{"inet network", connectors.Column{Type: "inet", TypeOID: pgtype.InetOID},
			netip.MustParsePrefix("10.1.2.3/16"), "10.1.2.3/16", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapColumn(tc.col, false, old)
			if err != nil {
				t.Fatal(err)
			}
			cv := newConverter([]colMapping{m})
			got, err := cv.value(&cv.cols[0], encode(t, tc.col.TypeOID, tc.v))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// Unknown and NULL values.
	m, _ := mapColumn(connectors.Column{Type: "integer", TypeOID: pgtype.Int4OID, NotNull: true}, false, old)
	cv := newConverter([]colMapping{m})
	if got, err := cv.value(&cv.cols[0], connectors.Value{Kind: connectors.Null}); err != nil || got != int32(0) {
		t.Fatalf("null in a non-Nullable column: %v %v", got, err)
	}
	if got, err := cv.value(&cv.cols[0], connectors.Value{Kind: connectors.Binary, Data: []byte{1}}); err == nil {
		t.Fatalf("short int4 accepted: %v", got)
	}
	if s := timestampText(math.MinInt64); s != "-infinity" {
		t.Fatal(s)
	}
}
