package statuspage

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults of Config.
const (
	// DefaultRefresh is how often the page fetches /api/status.
	DefaultRefresh = 3 * time.Second
	// DefaultEventLimit is how many of the latest events the page shows.
	DefaultEventLimit = 50
	// DefaultHistoryWindow is how far back the lag chart reaches.
	DefaultHistoryWindow = time.Hour
	// DefaultQueryTimeout bounds one read of the catalog.
	DefaultQueryTimeout = 5 * time.Second
)

// DB is what the handler needs of the catalog database: read-only
// transactions. A *pgxpool.Pool (catalog.Store.Pool) satisfies it; the
// handler opens each transaction read-only and reads only the views of
// schema sluice_status, so a pool logged in as the catalog's reader role
// (catalog.Store.ReaderURL) serves as well.
type DB interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Config configures the status page. The zero values of the optional fields
// take the defaults above.
type Config struct {
	// DB is the catalog database (required). The caller owns it.
	DB DB
	// Logger receives catalog read failures and recovered panics (default:
	// slog.Default()).
	Logger *slog.Logger
	// Refresh is how often the page fetches /api/status (default
	// DefaultRefresh; at least 500 ms).
	Refresh time.Duration
	// EventLimit is how many of the latest mirror_events the page shows
	// (default DefaultEventLimit; at most 1000).
	EventLimit int
	// HistoryWindow is how far back the lag chart reads
	// mirror_lag_history (default DefaultHistoryWindow; at most 7 days).
	HistoryWindow time.Duration
	// QueryTimeout bounds one read of the catalog (default
	// DefaultQueryTimeout).
	QueryTimeout time.Duration
}

// Validate fills in the defaults and reports the first bad field.
func (c *Config) Validate() error {
	if c.DB == nil {
		return errors.New("statuspage: config: DB is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.Refresh == 0:
		c.Refresh = DefaultRefresh
	case c.Refresh < 500*time.Millisecond:
		return fmt.Errorf("statuspage: config: Refresh %s is below 500ms", c.Refresh)
	}
	switch {
	case c.EventLimit == 0:
		c.EventLimit = DefaultEventLimit
	case c.EventLimit < 0 || c.EventLimit > 1000:
		return fmt.Errorf("statuspage: config: EventLimit %d is not between 1 and 1000", c.EventLimit)
	}
	switch {
	case c.HistoryWindow == 0:
		c.HistoryWindow = DefaultHistoryWindow
	case c.HistoryWindow < 0 || c.HistoryWindow > 7*24*time.Hour:
		return fmt.Errorf("statuspage: config: HistoryWindow %s is not between 0 and 168h", c.HistoryWindow)
	}
	switch {
	case c.QueryTimeout == 0:
		c.QueryTimeout = DefaultQueryTimeout
	case c.QueryTimeout < 0:
		return fmt.Errorf("statuspage: config: QueryTimeout %s is negative", c.QueryTimeout)
	}
	return nil
}

// assets holds the page: index.html, page.css and page.js.
//
//go:embed assets
var assets embed.FS

// Handler serves the status page. It is safe for concurrent use and holds
// no state between requests but its Config.
type Handler struct {
	cfg    Config
	assets fs.FS
}

var _ http.Handler = (*Handler)(nil)

// New returns the status page's handler, to be mounted at "/" (every path
// it serves is relative, so a prefix stripped with http.StripPrefix works
// too). It does not touch the database until a request comes.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("statuspage: %w", err)
	}
	return &Handler{cfg: cfg, assets: sub}, nil
}

// files maps the paths the handler serves from assets to their content
// types.
var files = map[string]struct{ name, contentType string }{
	"/":           {"index.html", "text/html; charset=utf-8"},
	"/index.html": {"index.html", "text/html; charset=utf-8"},
	"/page.css":   {"page.css", "text/css; charset=utf-8"},
	"/page.js":    {"page.js", "text/javascript; charset=utf-8"},
}

// ServeHTTP serves "/" (the page), its assets and "/api/status" (the JSON).
// Any other method than GET or HEAD gets 405, any other path 404. A panic
// is recovered, logged and answered with 500.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.cfg.Logger.ErrorContext(r.Context(), "status page: panic", "path", r.URL.Path, "panic", v,
				"stack", string(debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: the status page is read-only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == "/api/status" {
		h.serveStatus(w, r)
		return
	}
	f, ok := files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	body, err := fs.ReadFile(h.assets, f.name)
	if err != nil { // cannot happen: the files are embedded
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Cache-Control", "no-cache")
	// Everything the page loads comes from here: no inline script, no
	// other origin, no framing.
	w.Header().Set("Content-Security-Policy",
		"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// serveStatus answers /api/status: 200 with a Status, or 503 with a Status
// whose Error says why the catalog could not be read.
func (h *Handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	st, err := h.read(ctx)
	code := http.StatusOK
	if err != nil {
		h.cfg.Logger.WarnContext(r.Context(), "status page: read the catalog", "error", err)
		code = http.StatusServiceUnavailable
		st = &Status{GeneratedAt: time.Now().UTC(), RefreshSeconds: h.cfg.Refresh.Seconds(),
			Error: err.Error(), Mirrors: []Mirror{}, Events: []Event{}}
	}
	body, err := json.Marshal(st)
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "status page: encode status", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)+1))
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = io.WriteString(w, string(body)+"\n")
}
