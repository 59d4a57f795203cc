package catalog_test

import (
	"testing"

	"github.com/sluicedb/sluice/catalog"
)

// TestQuotedNamesMigration checks that the migration to quoted table names
// rewrites names stored the old way (schema.table unquoted, split at the
// first dot) as quote_ident renders each part, and that the catalog then
// reads them back as the executor writes them.
func TestQuotedNamesMigration(t *testing.T) {
	url := cluster.NewDB(t)
	conn := connect(t, url)
	ctx := testCtx(t)
	if err := catalog.MigrateUpTo(ctx, conn, "quoted_names"); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, `
INSERT INTO sluice.peers (name, type, options_sealed) VALUES ('p', 'POSTGRES', '\x00');
INSERT INTO sluice.mirrors (name, source_peer, destination_peer, publication_name, slot_name) VALUES ('m', 'p', 'p', 'pub', 'slot');
INSERT INTO sluice.mirror_tables (mirror, source_table, destination_table, ordinal) VALUES
    ('m', 'public.users', 'public.users', 0),
    ('m', 'public.Upper.Dot', 'dst.Upper.Dot', 1),
    ('m', 'public.user', 'public.we"ird', 2)`)
	if err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, url, testKey(1))
	m, err := s.GetMirror(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{
		{"public.users", "public.users"},
		{`public."Upper.Dot"`, `dst."Upper.Dot"`},
		{`public."user"`, `public."we""ird"`},
	}
	if len(m.Tables) != len(want) {
		t.Fatalf("tables = %+v", m.Tables)
	}
	for i, w := range want {
		if m.Tables[i].Source != w[0] || m.Tables[i].Destination != w[1] {
			t.Errorf("table %d = %s -> %s, want %s -> %s", i, m.Tables[i].Source, m.Tables[i].Destination, w[0], w[1])
		}
	}
}
