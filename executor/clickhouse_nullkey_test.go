package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A column nullable in the source may be in a ClickHouse order_by, on
// CREATE MIRROR and on a swap resync: it is created non-Nullable with a
// NOTICE, and a NULL the source sends for it (in the initial load or by
// CDC) is stored as the type's default and reported as a warning in
// mirror_events, with the table, column and count.
func TestClickHouseNullableOrderBy(t *testing.T) {
	ch := startClickHouse(t)
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	var notices []string
	cfg := f.conn.Config().Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	mustExec(t, conn, fmt.Sprintf("CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	mustExec(t, f.src, `
CREATE TABLE accounts (aid int PRIMARY KEY, bid int, filler text);
INSERT INTO accounts SELECT g, g % 3 + 1, 'a' || g FROM generate_series(1, 200) g;
CREATE TABLE branches (id int PRIMARY KEY, region text, n int);
INSERT INTO branches SELECT g, 'r' || (g % 4), g FROM generate_series(1, 50) g;
UPDATE branches SET region = NULL WHERE id = 7;`)
	notices = nil
	mustExec(t, conn, `CREATE MIRROR nk FROM src TO ch WITH TABLE MAPPING
		(public.accounts:accounts, {from: public.branches, to: branches, order_by: [region, id]})`)
	if len(notices) != 1 || !strings.Contains(notices[0], `"region"`) || !strings.Contains(notices[0], "public.branches") ||
		!strings.Contains(notices[0], "default") {
		t.Fatalf("create notices = %q, want one naming region of public.branches", notices)
	}
	f.waitStatus(t, "nk", "RUNNING")
	if got := chRows(t, ch, `SELECT concat(sorting_key, ' / ', (SELECT type FROM system.columns WHERE database = 'default'
		AND table = 'branches' AND name = 'region')) FROM system.tables WHERE database = 'default' AND name = 'branches'`); len(got) != 1 || got[0] != "region, id / String" {
		t.Fatalf("branches key and region type = %q, want region, id / String", got)
	}
	// The NULL of the initial load: stored as '' and reported.
	waitSame(t, f.src, `SELECT coalesce(region, '') || '|' || id FROM branches ORDER BY id`, ch,
		`SELECT concat(region, '|', toString(id)) FROM branches FINAL WHERE _sluice_is_deleted = 0 ORDER BY id`)
	waitEvent(t, conn, "nk", `public.branches: NULL stored as the type's default%1 in "region"`)

	// Swap resync with a nullable column in order_by: accepted, with a notice.
	notices = nil
	mustExec(t, conn, `RESYNC TABLE nk.public.accounts WITH (strategy = 'swap', order_by = 'bid,aid')`)
	if len(notices) != 1 || !strings.Contains(notices[0], `"bid"`) {
		t.Fatalf("resync notices = %q, want one naming bid", notices)
	}
	f.waitResync(t, "nk", "public.accounts", "done")
	if got := chRows(t, ch, `SELECT sorting_key FROM system.tables WHERE database = 'default' AND name = 'accounts'`); len(got) != 1 || got[0] != "bid, aid" {
		t.Fatalf("accounts sorting key %q, want bid, aid", got)
	}
	// A NULL arriving by CDC: stored as 0, reported.
	mustExec(t, f.src, `INSERT INTO accounts VALUES (1000, NULL, 'null bid'), (1001, NULL, 'null bid'), (1002, NULL, 'null bid')`)
	const pgAccounts = `SELECT aid || '|' || coalesce(bid, 0) || '|' || filler FROM accounts ORDER BY aid`
	const chAccounts = `SELECT concat(toString(aid), '|', toString(bid), '|', filler) FROM accounts FINAL WHERE _sluice_is_deleted = 0 ORDER BY aid`
	waitSame(t, f.src, pgAccounts, ch, chAccounts)
	waitEvent(t, conn, "nk", `public.accounts: NULL stored as the type's default%3 in "bid"`)
}

// waitEvent waits for a warning of mirror in mirror_events whose message
// is LIKE pattern.
func waitEvent(t *testing.T, conn *pgx.Conn, mirror, pattern string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := conn.QueryRow(testCtx(t), `SELECT count(*) FROM mirror_events WHERE mirror = $1 AND kind = 'warning'
			AND message LIKE $2`, mirror, pattern).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no warning of mirror %s like %q; events:\n%s", mirror, pattern,
		strings.Join(pgRows(t, conn, "SELECT kind || ': ' || message FROM mirror_events WHERE mirror = '"+mirror+"' ORDER BY at"), "\n"))
}
