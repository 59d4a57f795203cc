package connectors_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/connectors"
)

// toyPeer is a connectors.Peer that reaches nothing.
type toyPeer struct{ host string }

func (p *toyPeer) StoredOptions(given map[string]string) map[string]string {
	return map[string]string{"host": given["host"], "port": "7"}
}

func (p *toyPeer) Check(context.Context, string) (connectors.PeerCheck, error) {
	return connectors.PeerCheck{Version: "1"}, nil
}

func toyKind(typ string) connectors.Kind {
	return connectors.Kind{Type: typ, Name: "Toy", Destination: true,
		Parse: connectors.ParseWith(func(opts map[string]string) (*toyPeer, error) {
			host, _, _, _, err := parse(opts)
			if err != nil {
				return nil, err
			}
			return &toyPeer{host: host}, nil
		})}
}

func TestRegistry(t *testing.T) {
	r, err := connectors.NewRegistry(toyKind("A"), toyKind("B"), toyKind("C"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Types(); got != "A, B and C" {
		t.Errorf("Types: %q", got)
	}
	k, ok := r.Lookup("B")
	if !ok || k.Type != "B" || !k.Destination || k.Source || k.Federated != nil {
		t.Fatalf("Lookup(B): %+v %v", k, ok)
	}
	if _, ok := r.Lookup("b"); ok {
		t.Error("Lookup is not case-sensitive")
	}
	// A failed parse is a nil Peer, not a typed nil.
	if p, err := k.Parse(map[string]string{}); p != nil || err == nil || err.Error() != `option "host" is required` {
		t.Errorf("Parse without host: %#v, %v", p, err)
	}
	p, err := k.Parse(map[string]string{"host": "h"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.StoredOptions(map[string]string{"host": "h"}); got["port"] != "7" || got["host"] != "h" {
		t.Errorf("StoredOptions: %v", got)
	}
	two, _ := connectors.NewRegistry(toyKind("A"), toyKind("B"))
	one, _ := connectors.NewRegistry(toyKind("A"))
	if two.Types() != "A and B" || one.Types() != "A" {
		t.Errorf("Types: %q, %q", two.Types(), one.Types())
	}
	if _, err := connectors.NewRegistry(toyKind("A"), toyKind("A")); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a type registered twice: %v", err)
	}
	if _, err := connectors.NewRegistry(connectors.Kind{Type: "A"}); err == nil {
		t.Error("a kind without a parser was accepted")
	}
}
