package executor

import (
	"testing"

	"github.com/sluicedb/sluice/sqlext"
)

// parsed returns the one standard statement of sql.
func parsed(t *testing.T, sql string) *sqlext.Passthrough {
	t.Helper()
	stmts, err := sqlext.Parse(sql)
	if err != nil || len(stmts) != 1 {
		t.Fatalf("parse %s: %v", sql, err)
	}
	p, ok := stmts[0].(*sqlext.Passthrough)
	if !ok {
		t.Fatalf("%s: %T", sql, stmts[0])
	}
	return p
}

// TestForwardedWrite checks which statements are forwarded to a peer and
// the text a DROP is sent as.
func TestForwardedWrite(t *testing.T) {
	tests := []struct{ sql, kind, sent string }{
		{"INSERT INTO p.s.t VALUES (1)", "INSERT", ""},
		{"UPDATE p.s.t SET a = 1", "UPDATE", ""},
		{"DELETE FROM p.s.t", "DELETE", ""},
		{"MERGE INTO p.s.t USING p.s.u ON true WHEN MATCHED THEN DELETE", "MERGE", ""},
		{"CREATE TABLE IF NOT EXISTS p.s.t (a int)", "CREATE TABLE", ""},
		{"CREATE TABLE p.s.t AS SELECT 1", "CREATE TABLE AS", ""},
		{"CREATE MATERIALIZED VIEW p.s.v AS SELECT 1", "", ""},
		{"TRUNCATE TABLE p.s.t", "TRUNCATE TABLE", ""},
		{"CREATE INDEX i ON p.s.t (a)", "CREATE INDEX", ""},
		{"ALTER TABLE p.s.t ADD COLUMN b int", "ALTER TABLE", ""},
		{"ALTER TABLE p.s.t RENAME COLUMN a TO b", "ALTER TABLE", ""},
		{"ALTER TABLE p.s.t RENAME TO u", "ALTER TABLE", ""},
		{"ALTER INDEX p.s.i RENAME TO j", "", ""},
		{"CREATE VIEW p.s.v AS SELECT 1", "", ""},
		{"SELECT * FROM p.s.t", "", ""},
		{"DROP TABLE p.s.t", "DROP TABLE", "DROP TABLE s.t"},
		{`DROP TABLE IF EXISTS "P" . s /* c */ . "T t", p.s.u CASCADE`, "DROP TABLE", `DROP TABLE IF EXISTS s /* c */ . "T t", s.u CASCADE`},
		{"DROP INDEX p.s.i", "DROP INDEX", "DROP INDEX s.i"},
		{"DROP VIEW p.s.v", "", ""},
	}
	for _, tt := range tests {
		p := parsed(t, tt.sql)
		if got := forwardedWrite(p.Stmt.Stmt); got != tt.kind {
			t.Errorf("%s: kind %q, want %q", tt.sql, got, tt.kind)
		}
		if tt.sent == "" {
			continue
		}
		var refs []peerRef
		for _, c := range dropRefs(p) {
			refs = append(refs, c.peerRef)
		}
		if got := removeSpans(p.Text, qualifierSpans(p.Text, refs)); got != tt.sent {
			t.Errorf("%s: sent %q, want %q", tt.sql, got, tt.sent)
		}
	}
}

// TestCheckWriteNames checks that every table a forwarded write names is on
// its peer, WITH queries aside.
func TestCheckWriteNames(t *testing.T) {
	tests := []struct {
		sql string
		ok  bool
	}{
		{"INSERT INTO p.s.t SELECT * FROM p.s.u", true},
		{"WITH x AS (SELECT 1) INSERT INTO p.s.t SELECT * FROM x", true},
		{"INSERT INTO p.s.t SELECT * FROM x", false},
		{"INSERT INTO p.s.t SELECT * FROM s.x", false},
		{"WITH x AS (SELECT 1) INSERT INTO p.s.t SELECT * FROM s.x", false},
		{"CREATE TABLE p.s.t (a int REFERENCES p.s.u)", true},
		{"CREATE TABLE p.s.t (a int REFERENCES u)", false},
		{"DROP TABLE p.s.t, p.s.u", true},
		{"DROP TABLE p.s.t, s.u", false},
		{"DROP TABLE p.s.t, q.s.u", false},
	}
	for _, tt := range tests {
		p := parsed(t, tt.sql)
		err := checkWriteNames(p.Stmt.Stmt, "p", forwardedWrite(p.Stmt.Stmt), nil)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok %v", tt.sql, err, tt.ok)
		}
	}
}
