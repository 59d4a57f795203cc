package statuspage_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
	"github.com/sluicedb/sluice/server/statuspage"
)

// The load the page watches: loadRows rows in partitions of
// loadPartition, copied by one worker into a destination where every
// inserted row sleeps rowSleep, so the copy lasts about 12 s.
const (
	loadRows      = 12000
	loadPartition = 1000
	rowSleep      = "0.001"
	mirrorName    = "watched"
	// htmlName is a table name and an event message that would run script
	// if the page rendered them as HTML.
	htmlName = `<img src=x onerror="window.__pwned=1">`
)

// slowDestination makes every table later created in the database at url
// sleep rowSleep per inserted row (an event trigger adds a row trigger),
// so that a load into it can be watched.
func slowDestination(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	must(t, err, "connect destination")
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM pg_sleep(`+rowSleep+`); RETURN NEW; END$$;
CREATE FUNCTION public.slow_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
    EXECUTE format('CREATE TRIGGER slow_copy BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION public.slow_row()',
                   r.object_identity);
  END LOOP;
END$$;
CREATE EVENT TRIGGER slow_new_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION public.slow_new_tables();`)
	must(t, err, "slow the destination down")
}

// dbProgress is the watched table's row of sluice_status.mirror_tables,
// and the catalog's clock when it was read.
type dbProgress struct {
	At                             time.Time
	Copied, Estimated, Done, Total int64
	Step                           string
}

// readProgress reads the watched table's progress from the catalog.
func readProgress(t *testing.T, ctx context.Context, cat *pgx.Conn) dbProgress {
	t.Helper()
	var p dbProgress
	err := cat.QueryRow(ctx, `
SELECT clock_timestamp(), rows_copied, rows_estimated, partitions_done, partitions_total, coalesce(step, '')
FROM sluice_status.mirror_tables WHERE mirror = $1 AND source_table = 'public.big'`, mirrorName).
		Scan(&p.At, &p.Copied, &p.Estimated, &p.Done, &p.Total, &p.Step)
	must(t, err, "read mirror_tables")
	return p
}

// pageProgress is what the page shows for the watched table: the
// progress elements' attributes and the render's catalog time.
type pageProgress struct {
	GeneratedAt                                   string
	Step, Status                                  string
	RowsValue, RowsMax, RowsData, RowsDataMax     string
	PartsValue, PartsMax, PartsData, PartsDataMax string
	RowsText                                      string
}

// pageProgressJS reads pageProgress; null until the table's row has
// progress bars.
const pageProgressJS = `(() => {
  const tr = [...document.querySelectorAll("tr.table-row")].find(
    (r) => r.dataset.mirror === "` + mirrorName + `" && r.dataset.table === "public.big");
  if (!tr) return null;
  const rows = tr.querySelector("progress.rows-progress"), parts = tr.querySelector("progress.partitions-progress");
  if (!rows || !parts) return null;
  const a = (e, n) => e.getAttribute(n) || "";
  return {GeneratedAt: document.body.dataset.generatedAt, Step: tr.dataset.step, Status: tr.dataset.status,
    RowsValue: a(rows, "value"), RowsMax: a(rows, "max"), RowsData: a(rows, "data-value"), RowsDataMax: a(rows, "data-max"),
    PartsValue: a(parts, "value"), PartsMax: a(parts, "max"), PartsData: a(parts, "data-value"), PartsDataMax: a(parts, "data-max"),
    RowsText: tr.querySelector(".rows-progress-text").textContent};
})()`

// The page, loaded in headless Chromium during an initial load, shows the
// progress mirror_tables holds, the lag samples of mirror_lag_history in
// its chart, the events, unknown lag as unknown, and names as text.
func TestPageInChromium(t *testing.T) {
	ctx := testCtx(t)
	browser := startBrowser(t)

	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	slowDestination(t, ctx, dstURL)
	peerCluster.Exec(t, testbed.DBName(srcURL), fmt.Sprintf(`
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, %d) g;
ANALYZE big;
CREATE TABLE %s (id int PRIMARY KEY);
INSERT INTO %[2]s VALUES (1), (2);`, loadRows, pgx.Identifier{htmlName}.Sanitize()))

	s, err := testbed.StartSluice(ctx, catalogCluster, testbed.Options{Password: "pw"})
	must(t, err, "start sluice")
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop sluice: %v", err)
		}
	})
	h, err := statuspage.New(statuspage.Config{DB: s.Store.Pool(), Refresh: time.Second})
	must(t, err, "statuspage.New")
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	sl, err := pgx.Connect(ctx, s.URL())
	must(t, err, "connect sluice")
	defer sl.Close(ctx)
	for name, url := range map[string]string{"src": srcURL, "dst": dstURL} {
		_, err := sl.Exec(ctx, fmt.Sprintf("CREATE PEER %s FROM POSTGRES WITH (host = '127.0.0.1', port = %d, user = 'postgres', password = '%s', database = '%s')",
			name, peerCluster.Port(), peerCluster.Password(), testbed.DBName(url)))
		must(t, err, "create peer %s", name)
	}
	q := pgx.Identifier{"public", htmlName}.Sanitize()
	_, err = sl.Exec(ctx, fmt.Sprintf(`CREATE MIRROR %s FROM src TO dst WITH TABLE MAPPING (public.big:public.big, %s:%s)
WITH (snapshot_num_rows_per_partition = %d, snapshot_max_parallel_workers = 1, snapshot_num_tables_in_parallel = 1)`,
		mirrorName, q, q, loadPartition))
	must(t, err, "create mirror")

	cat, err := pgx.Connect(ctx, s.CatalogURL)
	must(t, err, "connect catalog")
	defer cat.Close(ctx)
	samples := insertSamples(t, ctx, cat)
	_, err = cat.Exec(ctx, `INSERT INTO sluice.mirror_events (mirror, kind, message) VALUES ($1, 'warning', $2)`,
		mirrorName, htmlName+"<script>window.__pwned=2</script>")
	must(t, err, "insert an event")

	navigate(t, browser, srv.URL)
	waitJS(t, browser, pageProgressJS, 30*time.Second, "the page shows progress bars for public.big")
	checkProgress(t, ctx, browser, cat)
	checkChart(t, browser, samples)
	checkEvents(t, ctx, browser, cat)
	checkUnknownLag(t, browser)
	checkNoInjection(t, browser)
	screenshot(t, browser, "status-page-during-load")
}

// checkProgress compares the page's progress bars with mirror_tables read
// just before and just after the render: rows and partitions copied only
// grow while copying, so what the page shows must lie between the two
// reads. At least one comparison must catch the copy half-way.
func checkProgress(t *testing.T, ctx context.Context, browser context.Context, cat *pgx.Conn) {
	t.Helper()
	halfway := 0
	for i := 0; halfway < 3 && i < 40; i++ {
		before := readProgress(t, ctx, cat)
		// Wait for a render made from a read of the catalog after before.
		var page *pageProgress
		deadline := time.Now().Add(10 * time.Second)
		for {
			page = evalJS[*pageProgress](t, browser, pageProgressJS)
			if page == nil && halfway > 0 && readProgress(t, ctx, cat).Step != "copying" {
				break // the load ended and its bars went
			}
			if page != nil {
				at, err := time.Parse(time.RFC3339Nano, page.GeneratedAt)
				must(t, err, "parse data-generated-at %q", page.GeneratedAt)
				if at.After(before.At) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no render of public.big's progress read after %s (last %+v)", before.At, page)
			}
			time.Sleep(50 * time.Millisecond)
		}
		after := readProgress(t, ctx, cat)
		if page == nil { // the load ended: the bars went
			break
		}
		if after.Step != "copying" && before.Step != "copying" && page.Step != "copying" {
			if halfway == 0 {
				t.Fatalf("the load of public.big was not seen copying (steps %q, %q, %q): it must last longer", before.Step, page.Step, after.Step)
			}
			break
		}
		between := func(what, got string, lo, hi int64) {
			var v int64
			if _, err := fmt.Sscan(got, &v); err != nil || v < min(lo, hi) || v > max(lo, hi) {
				t.Errorf("page shows %s %q; mirror_tables had %d before and %d after", what, got, lo, hi)
			}
		}
		between("rows copied (data-value)", page.RowsData, before.Copied, after.Copied)
		between("rows estimated (data-max)", page.RowsDataMax, before.Estimated, after.Estimated)
		between("partitions done (data-value)", page.PartsData, before.Done, after.Done)
		between("partitions total (data-max)", page.PartsDataMax, before.Total, after.Total)
		// The bar itself: value of max, both as the table's figures.
		if page.RowsValue != page.RowsData || page.RowsMax != page.RowsDataMax {
			t.Errorf("rows progress bar value=%q max=%q, want the copied %s of estimated %s", page.RowsValue, page.RowsMax,
				page.RowsData, page.RowsDataMax)
		}
		if page.PartsValue != page.PartsData || page.PartsMax != page.PartsDataMax {
			t.Errorf("partitions progress bar value=%q max=%q, want %s of %s", page.PartsValue, page.PartsMax,
				page.PartsData, page.PartsDataMax)
		}
		if page.Step != before.Step && page.Step != after.Step {
			t.Errorf("page shows step %q; mirror_tables had %q before and %q after", page.Step, before.Step, after.Step)
		}
		if before.Step == "copying" && after.Step == "copying" && before.Copied > 0 && after.Copied < loadRows {
			halfway++
			t.Logf("page: %s (step %s, partitions %s of %s); table: %d..%d rows", page.RowsText, page.Step,
				page.PartsData, page.PartsDataMax, before.Copied, after.Copied)
		}
		time.Sleep(700 * time.Millisecond)
	}
	if halfway == 0 {
		t.Errorf("never saw public.big half-way through its copy")
	}
}

// lagSample is a row inserted into sluice.mirror_lag_history.
type lagSample struct {
	At      time.Time
	Bytes   *int64
	Seconds *float64
}

// insertSamples writes known lag samples for the mirror (the sampler
// belongs to the flow; these stand for it) and returns those within the
// last hour, oldest first.
func insertSamples(t *testing.T, ctx context.Context, cat *pgx.Conn) []lagSample {
	t.Helper()
	rows, err := cat.Query(ctx, `
INSERT INTO sluice.mirror_lag_history (mirror, at, lag_bytes, lag_seconds, rows_per_second)
SELECT $1, now() - ago, b, s, r FROM (VALUES
  (interval '2 hours', 99999999::bigint, 999::float8, 1::float8),  -- outside the chart's hour
  (interval '50 minutes', 1048576, 12.5, 100),
  (interval '30 minutes', 4096, NULL, NULL),
  (interval '10 minutes', 2097152, 30.25, 250),
  (interval '1 minute', 0, 0.5, 3)) v(ago, b, s, r)
RETURNING at, lag_bytes, lag_seconds`, mirrorName)
	must(t, err, "insert lag samples")
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[lagSample])
	must(t, err, "insert lag samples")
	sort.Slice(got, func(i, j int) bool { return got[i].At.Before(got[j].At) })
	return got[1:]
}

// chartPoint is a point of the page's lag chart.
type chartPoint struct {
	Series, At string
	Value      float64
	CX, CY     float64
}

// checkChart finds each sample of the last hour in the chart, with its
// value, in time order left to right and value order bottom to top, and
// not the older one.
func checkChart(t *testing.T, browser context.Context, samples []lagSample) {
	t.Helper()
	points := evalJS[[]chartPoint](t, browser, `[...document.querySelectorAll("svg.lag-chart circle.point")].filter(
    (c) => c.closest("svg").dataset.mirror === "`+mirrorName+`").map((c) => ({Series: c.dataset.series,
    At: c.dataset.at, Value: Number(c.dataset.value), CX: Number(c.getAttribute("cx")), CY: Number(c.getAttribute("cy"))}))`)
	find := func(series string, at time.Time) *chartPoint {
		for i := range points {
			p := &points[i]
			if pt, err := time.Parse(time.RFC3339Nano, p.At); err == nil && p.Series == series && pt.Equal(at) {
				return p
			}
		}
		return nil
	}
	for _, series := range []string{"lag_bytes", "lag_seconds"} {
		var prev *chartPoint
		var shown []*chartPoint
		for _, s := range samples {
			var want *float64
			if series == "lag_bytes" && s.Bytes != nil {
				v := float64(*s.Bytes)
				want = &v
			} else if series == "lag_seconds" {
				want = s.Seconds
			}
			p := find(series, s.At)
			switch {
			case want == nil && p != nil:
				t.Errorf("chart shows a %s point at %s for a NULL sample", series, s.At)
			case want != nil && p == nil:
				t.Errorf("chart has no %s point at %s (points: %+v)", series, s.At, points)
			case want != nil && p.Value != *want:
				t.Errorf("chart's %s point at %s has value %v, want %v", series, s.At, p.Value, *want)
			}
			if p == nil {
				continue
			}
			if prev != nil && p.CX <= prev.CX {
				t.Errorf("chart's %s point at %s is not right of the one before it (%v <= %v)", series, s.At, p.CX, prev.CX)
			}
			prev = p
			shown = append(shown, p)
		}
		sort.Slice(shown, func(i, j int) bool { return shown[i].Value < shown[j].Value })
		for i := 1; i < len(shown); i++ {
			if shown[i].Value > shown[i-1].Value && shown[i].CY >= shown[i-1].CY {
				t.Errorf("chart's %s point of %v is not above the one of %v", series, shown[i].Value, shown[i-1].Value)
			}
		}
	}
	for _, p := range points {
		if p.Value == 99999999 || p.Value == 999 {
			t.Errorf("chart shows the sample of two hours ago: %+v", p)
		}
	}
}

// checkEvents waits for the mirror's latest event and the injected one on
// the page.
func checkEvents(t *testing.T, ctx context.Context, browser context.Context, cat *pgx.Conn) {
	t.Helper()
	var kind, msg string
	err := cat.QueryRow(ctx, `SELECT kind, message FROM sluice_status.mirror_events WHERE mirror = $1 AND kind <> 'warning'
ORDER BY at DESC LIMIT 1`, mirrorName).Scan(&kind, &msg)
	must(t, err, "read mirror_events")
	for _, want := range []string{msg, htmlName + "<script>window.__pwned=2</script>"} {
		waitJS(t, browser, `[...document.querySelectorAll("#events tr.event")].some((r) => r.dataset.mirror === "`+
			mirrorName+`" && r.querySelector(".message").textContent === `+jsString(want)+`)`, 10*time.Second,
			fmt.Sprintf("the page shows the event %q", want))
	}
}

// checkUnknownLag: before any transaction is applied lag_seconds is NULL,
// shown as unknown, never as 0.
func checkUnknownLag(t *testing.T, browser context.Context) {
	t.Helper()
	got := evalJS[struct{ Value, Text string }](t, browser, `(() => { const dd = [...document.querySelectorAll("article.mirror")].find(
    (a) => a.dataset.mirror === "`+mirrorName+`").querySelector("dd.lag-seconds");
  return {Value: dd.dataset.value, Text: dd.textContent}; })()`)
	if got.Value != "" || !strings.Contains(got.Text, "unknown") {
		t.Errorf("lag seconds before anything is applied shows data-value %q, %q; want empty and unknown", got.Value, got.Text)
	}
}

// checkNoInjection: the table and event named with markup are shown as
// text: no element was made from them and no script ran.
func checkNoInjection(t *testing.T, browser context.Context) {
	t.Helper()
	type injection struct {
		Imgs, InlineScripts int
		Pwned               bool
		TableShown          bool
	}
	got := evalJS[injection](t, browser, `({Imgs: document.querySelectorAll("img").length,
  InlineScripts: document.querySelectorAll("script:not([src])").length,
  Pwned: window.__pwned !== undefined,
  TableShown: [...document.querySelectorAll("tr.table-row .source-table")].some((e) => e.textContent === "public."+`+
		jsString(`"`+strings.ReplaceAll(htmlName, `"`, `""`)+`"`)+`)})`)
	if got.Imgs != 0 || got.InlineScripts != 0 || got.Pwned || !got.TableShown {
		t.Errorf("names with markup: %+v; want no img, no inline script, nothing run, the table name shown as text", got)
	}
}

// A catalog the handler cannot read shows as an error banner.
func TestPageErrorBanner(t *testing.T) {
	browser := startBrowser(t)
	bare := newPool(t, catalogCluster.NewDB(t)) // no catalog views
	h, err := statuspage.New(statuspage.Config{DB: bare, Refresh: time.Second, Logger: quiet})
	must(t, err, "statuspage.New")
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	navigate(t, browser, srv.URL)
	waitJS(t, browser, `document.body.dataset.state === "error" && !document.getElementById("error-banner").hidden &&
  document.getElementById("error-banner").textContent.includes("sluice_status.mirrors")`, 15*time.Second,
		"the page shows an error banner naming sluice_status.mirrors")
	screenshot(t, browser, "status-page-error")
}
