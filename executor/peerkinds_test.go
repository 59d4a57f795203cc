package executor_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/all"
	"github.com/sluicedb/sluice/internal/testbed"
	"github.com/sluicedb/sluice/sqlerr"
)

// toyPeer is a peer of a kind the executor knows nothing about: it
// accepts any host and reaches nothing.
type toyPeer struct{ host string }

func (p *toyPeer) StoredOptions(given map[string]string) map[string]string {
	opts := maps.Clone(given)
	opts["port"] = "7"
	return opts
}

func (p *toyPeer) Check(_ context.Context, name string) (connectors.PeerCheck, error) {
	if p.host == "down" {
		return connectors.PeerCheck{}, sqlerr.New(pgerrcode.SQLClientUnableToEstablishSQLConnection, "toy %q is down", name)
	}
	return connectors.PeerCheck{Version: "0.1"}, nil
}

// CREATE PEER serves the kinds the server is given, and only those: a new
// kind needs no change in the executor, and a kind left out is refused as
// not supported, with a hint naming the kinds there are.
func TestPeerKindsFromRegistry(t *testing.T) {
	toy := connectors.Kind{Type: "MYSQL", Name: "Toy",
		Parse: connectors.ParseWith(func(opts map[string]string) (*toyPeer, error) {
			v, err := connectors.OptionSpec{PeerType: "MYSQL", Keys: []string{"host"}}.Parse(opts)
			if err != nil {
				return nil, err
			}
			p := &toyPeer{host: v.Required("host")}
			return p, v.Err()
		})}
	var pg connectors.Kind
	for _, k := range all.Kinds() {
		if k.Type == "POSTGRES" {
			pg = k
		}
	}
	kinds, err := connectors.NewRegistry(pg, toy)
	if err != nil {
		t.Fatal(err)
	}
	s := startSluice(t, testbed.Options{Kinds: kinds})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)

	_, err = conn.Exec(ctx, "CREATE PEER ch FROM CLICKHOUSE WITH (host = 'h')")
	pe := wantError(t, err, pgerrcode.FeatureNotSupported)
	if pe.Message != "CLICKHOUSE peers are not supported yet" || pe.Hint != "Sluice supports POSTGRES and MYSQL peers today." ||
		pe.Position != 21 {
		t.Errorf("left-out kind: %q, hint %q, position %d", pe.Message, pe.Hint, pe.Position)
	}
	_, err = conn.Exec(ctx, "CREATE PEER m FROM MYSQL WITH (host = 'h', colour = 'blue')")
	pe = wantError(t, err, pgerrcode.SyntaxError)
	if pe.Message != `unknown option "colour": a MYSQL peer accepts host` || pe.Position != 44 {
		t.Errorf("unknown option: %q at %d", pe.Message, pe.Position)
	}
	_, err = conn.Exec(ctx, "CREATE PEER m FROM MYSQL WITH (host = 'down')")
	pe = wantError(t, err, pgerrcode.SQLClientUnableToEstablishSQLConnection)
	if pe.Message != `toy "m" is down` {
		t.Errorf("failed check: %q", pe.Message)
	}
	mustExec(t, conn, "CREATE PEER m FROM MYSQL WITH (host = 'h')")
	mustExec(t, conn, "CREATE PEER pg FROM POSTGRES WITH ("+peerOptions(db)+")")
	rows, err := conn.Query(ctx, "SELECT name, type, host, port::text FROM peers ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var name, typ, host, port string
		if err := rows.Scan(&name, &typ, &host, &port); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{name, typ, host, port}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"m MYSQL h 7", fmt.Sprintf("pg POSTGRES 127.0.0.1 %d", peerCluster.Port())}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("peers: %q, want %q", got, want)
	}
	// A peer of a kind without a wire dialer or federated reader cannot be
	// queried.
	_, err = conn.Exec(ctx, "SELECT * FROM m.public.t")
	pe = wantError(t, err, pgerrcode.FeatureNotSupported)
	if pe.Message != `queries on MYSQL peer "m" are not supported yet` {
		t.Errorf("query on a toy peer: %q", pe.Message)
	}
}
