package catalog_test

import (
	"testing"

	"github.com/sluicedb/sluice/catalog"
)

// statusVocabulary is every value sluice_status.mirrors.status can show.
var statusVocabulary = map[string]bool{
	"SETUP": true, "SNAPSHOT": true, "RESYNC": true, "RUNNING": true,
	"PAUSED": true, "FAILED": true, "COMPLETED": true,
}

// TestPhaseVocabularyMigration checks that the phase a mirror stores and
// the phase events it records use the words of mirrors.status: a catalog
// written before (phase CDC) is rewritten to RUNNING, and a mirror moved to
// streaming now records "phase RUNNING".
func TestPhaseVocabularyMigration(t *testing.T) {
	url := cluster.NewDB(t)
	conn := connect(t, url)
	ctx := testCtx(t)
	if err := catalog.MigrateUpTo(ctx, conn, "phase_vocabulary"); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, `
INSERT INTO sluice.peers (name, type, options_sealed) VALUES ('p', 'POSTGRES', '\x00');
INSERT INTO sluice.mirrors (name, source_peer, destination_peer, publication_name, slot_name, phase)
VALUES ('old', 'p', 'p', 'pub', 'slot', 'CDC');
INSERT INTO sluice.mirror_events (mirror, kind, message) VALUES
    ('old', 'phase', 'phase SNAPSHOT'), ('old', 'phase', 'phase CDC'), ('old', 'error', 'phase CDC failed')`)
	if err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, url, testKey(1))
	m, err := s.GetMirror(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if m.Phase != "RUNNING" {
		t.Errorf("phase after migration = %q, want RUNNING", m.Phase)
	}
	if catalog.PhaseCDC != "RUNNING" {
		t.Errorf("the streaming phase is stored as %q, want RUNNING", catalog.PhaseCDC)
	}

	_, err = conn.Exec(ctx, `
INSERT INTO sluice.mirrors (name, source_peer, destination_peer, publication_name, slot_name)
VALUES ('new', 'p', 'p', 'pub2', 'slot2')`)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{catalog.PhaseSnapshot, catalog.PhaseCDC, catalog.PhaseResync, catalog.PhaseSetup} {
		if err := s.SetPhase(ctx, "new", p); err != nil {
			t.Fatal(err)
		}
	}

	rows, err := conn.Query(ctx, `
SELECT mirror, message FROM sluice_status.mirror_events WHERE kind = 'phase' ORDER BY mirror, at`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var mirror, msg string
		if err := rows.Scan(&mirror, &msg); err != nil {
			t.Fatal(err)
		}
		got = append(got, mirror+": "+msg)
		if len(msg) < 7 || !statusVocabulary[msg[len("phase "):]] {
			t.Errorf("event of %s %q: phase not in the status vocabulary", mirror, msg)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"new: phase SNAPSHOT", "new: phase RUNNING", "new: phase RESYNC", "new: phase SETUP",
		"old: phase SNAPSHOT", "old: phase RUNNING"}
	if len(got) != len(want) {
		t.Fatalf("phase events = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("phase event %d = %q, want %q", i, got[i], want[i])
		}
	}
	var status string
	if err := conn.QueryRow(ctx, `SELECT status FROM sluice_status.mirrors WHERE name = 'old'`).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "RUNNING" {
		t.Errorf("status of the migrated mirror = %q, want RUNNING", status)
	}
	// An error message that mentions CDC is the error's text, not a phase.
	var msg string
	if err := conn.QueryRow(ctx, `SELECT message FROM sluice.mirror_events WHERE kind = 'error'`).Scan(&msg); err != nil {
		t.Fatal(err)
	}
	if msg != "phase CDC failed" {
		t.Errorf("error event rewritten to %q", msg)
	}
}
