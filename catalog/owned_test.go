package catalog_test

import (
	"reflect"
	"testing"

	"github.com/sluicedb/sluice/catalog"
)

func TestOwnedObjects(t *testing.T) {
	s := mustOpen(t, cluster.NewDB(t), testKey(1))
	ctx := testCtx(t)
	o, err := s.OwnedObjects(ctx)
	if err != nil || !o.Empty() {
		t.Fatalf("OwnedObjects without mirrors = %+v, %v", o, err)
	}
	for _, p := range []string{"src", "dst"} {
		if err := s.CreatePeer(ctx, catalog.Peer{Name: p, Type: "POSTGRES"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []catalog.Mirror{
		{Name: "m1", SourcePeer: "src", DestinationPeer: "dst", Publication: "sluice_m1", Slot: "sluice_m1"},
		{Name: "Odd", SourcePeer: "src", DestinationPeer: "dst", Publication: "Custom Pub", Slot: "custom_slot"},
	} {
		if err := s.CreateMirror(ctx, m, 0); err != nil {
			t.Fatal(err)
		}
	}
	o, err = s.OwnedObjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := catalog.MirrorObjects{
		Slots:        map[string]string{"sluice_m1": "m1", "custom_slot": "Odd"},
		Publications: map[string]string{"sluice_m1": "m1", "Custom Pub": "Odd"},
	}
	if !reflect.DeepEqual(o, want) || o.Empty() {
		t.Fatalf("OwnedObjects = %+v, want %+v", o, want)
	}
}
