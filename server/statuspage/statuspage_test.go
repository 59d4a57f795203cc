package statuspage_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/server/statuspage"
)

// quiet is a logger for handlers whose failures the test expects.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newHandler(t *testing.T, cfg statuspage.Config) *statuspage.Handler {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	h, err := statuspage.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// get serves one request and returns the response and its body.
func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// Bad configurations are refused, naming the field.
func TestConfigValidate(t *testing.T) {
	pool := newPool(t, openCatalog(t).Pool().Config().ConnString())
	for _, tc := range []struct {
		cfg  statuspage.Config
		want string
	}{
		{statuspage.Config{}, "DB is required"},
		{statuspage.Config{DB: pool, Refresh: time.Millisecond}, "Refresh"},
		{statuspage.Config{DB: pool, EventLimit: -1}, "EventLimit"},
		{statuspage.Config{DB: pool, EventLimit: 5000}, "EventLimit"},
		{statuspage.Config{DB: pool, HistoryWindow: -time.Second}, "HistoryWindow"},
		{statuspage.Config{DB: pool, QueryTimeout: -time.Second}, "QueryTimeout"},
	} {
		if _, err := statuspage.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

// The page and its assets are served to GET and HEAD; other methods get 405
// with Allow, other paths 404.
func TestRoutes(t *testing.T) {
	h := newHandler(t, statuspage.Config{DB: openCatalog(t).Pool()})
	for _, tc := range []struct {
		method, path string
		code         int
		ctype        string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/page.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/page.css", 200, "text/css; charset=utf-8"},
		{"GET", "/api/status", 200, "application/json"},
		{"HEAD", "/api/status", 200, "application/json"},
		{"GET", "/nope", 404, ""},
		{"POST", "/api/status", 405, ""},
		{"PUT", "/", 405, ""},
		{"DELETE", "/api/status", 405, ""},
	} {
		resp, body := get(t, h, tc.method, tc.path)
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.path, resp.StatusCode, tc.code, body)
			continue
		}
		if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, resp.Header.Get("Content-Type"), tc.ctype)
		}
		if tc.method == "HEAD" && body != "" {
			t.Errorf("HEAD %s: body %q, want none", tc.path, body)
		}
		if tc.code == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q, want \"GET, HEAD\"", tc.method, tc.path, resp.Header.Get("Allow"))
		}
	}
}

// /api/status on an empty catalog has empty lists, not nulls, and the
// catalog's clock.
func TestStatusEmpty(t *testing.T) {
	h := newHandler(t, statuspage.Config{DB: openCatalog(t).Pool(), Refresh: 2 * time.Second})
	resp, body := get(t, h, "GET", "/api/status")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /api/status: %d %s", resp.StatusCode, body)
	}
	for _, want := range []string{`"mirrors":[]`, `"events":[]`, `"refresh_seconds":2`, `"history_seconds":3600`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /api/status = %s, want %s in it", body, want)
		}
	}
	if strings.Contains(body, `"error"`) {
		t.Errorf("GET /api/status = %s, want no error", body)
	}
	var st statuspage.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(st.GeneratedAt); d < -time.Minute || d > time.Minute {
		t.Errorf("generated_at %s is %s from now", st.GeneratedAt, d)
	}
}

// A catalog that cannot be read answers 503 with the reason in "error",
// and the handler keeps serving.
func TestStatusCatalogError(t *testing.T) {
	// A database without the catalog's views.
	bare := newPool(t, catalogCluster.NewDB(t))
	closed := newPool(t, catalogCluster.NewDB(t))
	closed.Close()
	for name, db := range map[string]statuspage.DB{"no views": bare, "closed pool": closed} {
		h := newHandler(t, statuspage.Config{DB: db})
		for range 2 {
			resp, body := get(t, h, "GET", "/api/status")
			var st statuspage.Status
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatalf("%s: GET /api/status: %d %q: %v", name, resp.StatusCode, body, err)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || st.Error == "" || st.Mirrors == nil {
				t.Errorf("%s: GET /api/status = %d %s, want 503 with an error and empty lists", name, resp.StatusCode, body)
			}
			if name == "no views" && !strings.Contains(st.Error, "sluice_status.mirrors") {
				t.Errorf("%s: error %q, want it to name sluice_status.mirrors", name, st.Error)
			}
		}
		if resp, _ := get(t, h, "GET", "/"); resp.StatusCode != 200 {
			t.Errorf("%s: GET / = %d, want the page (it shows the error itself)", name, resp.StatusCode)
		}
	}
}

// A DB whose BeginTx panics gets a 500, not a crashed listener.
func TestPanicRecovered(t *testing.T) {
	h := newHandler(t, statuspage.Config{DB: panicDB{}})
	resp, _ := get(t, h, "GET", "/api/status")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("GET /api/status with a panicking DB: %d, want 500", resp.StatusCode)
	}
}

// panicDB is a statuspage.DB that panics, standing for a bug below the
// handler.
type panicDB struct{}

func (panicDB) BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error) { panic("boom") }
