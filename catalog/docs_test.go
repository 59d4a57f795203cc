package catalog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusColumnsDocumented checks that every column of every view in
// schema sluice_status, as a fully migrated catalog has them, has a row in
// the table of its view's section of docs/sql.md ("### view" under
// "## Status tables"), so that a column added without documentation fails
// the build.
func TestStatusColumnsDocumented(t *testing.T) {
	url := cluster.NewDB(t)
	mustOpen(t, url, testKey(1))
	conn := connect(t, url)
	ctx := testCtx(t)
	rows, err := conn.Query(ctx, `
SELECT c.table_name, c.column_name
FROM information_schema.columns c
JOIN information_schema.views v ON v.table_schema = c.table_schema AND v.table_name = c.table_name
WHERE c.table_schema = 'sluice_status'
ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	columns := map[string][]string{}
	for rows.Next() {
		var view, col string
		if err := rows.Scan(&view, &col); err != nil {
			t.Fatal(err)
		}
		columns[view] = append(columns[view], col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"peers", "mirrors", "mirror_tables", "mirror_events"} {
		if len(columns[v]) == 0 {
			t.Fatalf("view sluice_status.%s has no columns: %v", v, columns)
		}
	}

	text, err := os.ReadFile(filepath.Join("..", "docs", "sql.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := statusSections(string(text))
	for view, cols := range columns {
		documented, ok := sections[view]
		if !ok {
			t.Errorf("docs/sql.md has no section \"### %s\" under \"## Status tables\"", view)
			continue
		}
		for _, c := range cols {
			if !documented[c] {
				t.Errorf("docs/sql.md: column %s of sluice_status.%s is not documented (a table row \"| `%s` | ...\")", c, view, c)
			}
		}
		for c := range documented {
			if !hasString(cols, c) {
				t.Errorf("docs/sql.md documents column %s of sluice_status.%s, which it does not have", c, view)
			}
		}
	}
}

// statusSections reads the "## Status tables" part of docs/sql.md: for
// each "### view" section, the columns named in the first cell of its
// table rows.
func statusSections(text string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	in := false
	var cur map[string]bool
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimSpace(line[3:]) == "Status tables"
			cur = nil
		case in && strings.HasPrefix(line, "### "):
			cur = map[string]bool{}
			out[strings.Trim(strings.TrimSpace(line[4:]), "`")] = cur
		case cur != nil && strings.HasPrefix(line, "| `"):
			cell := strings.Split(line, "|")[1]
			for _, part := range strings.Split(cell, ",") {
				if name := strings.Trim(strings.TrimSpace(part), "`"); name != "" {
					cur[name] = true
				}
			}
		}
	}
	return out
}

func hasString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
