// Package metrics exports Sluice's figures in the Prometheus text format
// (docs/metrics.md). Two sources feed it:
//
//   - the catalog's status views, read at every scrape by a custom
//     collector, so that mirror status, lag, rows synced and snapshot
//     progress and whether a slot is active are exactly what sluice_status
//     shows (a NULL there is a series left out here, never a 0);
//   - what the flows measure in the process and the catalog does not keep
//     (bytes fetched, batch durations, errors), which Metrics receives as
//     the executor's Observer.
//
// Metrics has a registry of its own (with the Go runtime and process
// collectors), never the global one. The HTTP listener (server/web)
// serves Handler at /metrics.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sluicedb/sluice/executor"
	"github.com/sluicedb/sluice/executor/replication"
)

// Querier is what the collector needs of the catalog: a pool of
// connections to it (catalog.Store.Pool), used for one read-only query of
// the status views per scrape.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// scrapeTimeout bounds the catalog queries of one scrape.
const scrapeTimeout = 5 * time.Second

// batchBuckets are the batch duration histogram's upper bounds in seconds:
// from a few milliseconds (a small batch into Postgres) to minutes (a
// source transaction of millions of rows).
var batchBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// errorClasses are the classes of sluice_errors_total, each exported from
// 0 for every mirror.
var errorClasses = []string{replication.ErrorRetried, replication.ErrorNeedsUser, replication.ErrorTable}

// Metrics is the registry served at /metrics and the executor's Observer.
// Safe for concurrent use.
type Metrics struct {
	db  Querier
	log *slog.Logger
	reg *prometheus.Registry

	fetched *prometheus.CounterVec
	batches *prometheus.HistogramVec
	errors  *prometheus.CounterVec

	// mu guards seen, the mirrors the vectors above may have series of; a
	// scrape forgets those of mirrors the catalog no longer has.
	mu   sync.Mutex
	seen map[string]bool
}

var _ executor.Observer = (*Metrics)(nil)

// New returns the metrics of a server whose catalog db is; logger (nil:
// slog.Default()) gets scrapes' catalog errors.
func New(db Querier, logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.Default()
	}
	m := &Metrics{db: db, log: logger, reg: prometheus.NewRegistry(),
		seen: make(map[string]bool),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_fetched_bytes_total",
			Help: "Bytes the mirror's change stream received from its source since Sluice started."}, []string{"mirror"}),
		batches: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_batch_duration_seconds",
			Help:    "Time to apply a CDC batch on the destination, from opening its transaction to recording it.",
			Buckets: batchBuckets}, []string{"mirror"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_errors_total",
			Help: "Errors of the mirror since Sluice started, by class: retried (a step failed and is retried), " +
				"needs_user (a step failed and waits for the user), table (a table failed alone and is held)."},
			[]string{"mirror", "class"}),
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		(*statusCollector)(m))
	return m
}

// Handler serves the registry in the Prometheus exposition formats. A
// scrape that cannot read the catalog serves the rest, and the error is
// logged.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError,
		ErrorLog: slogErrorLog{m.log}})
}

// Registry returns the registry, for tests and for a caller that adds
// collectors of its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// FetchedBytes implements replication.Observer.
func (m *Metrics) FetchedBytes(mirror string, n int64) {
	m.see(mirror)
	m.fetched.WithLabelValues(mirror).Add(float64(n))
}

// BatchApplied implements replication.Observer.
func (m *Metrics) BatchApplied(mirror string, _ int, took time.Duration) {
	m.see(mirror)
	m.batches.WithLabelValues(mirror).Observe(took.Seconds())
}

// Error implements replication.Observer.
func (m *Metrics) Error(mirror, class string) {
	m.see(mirror)
	m.errors.WithLabelValues(mirror, class).Inc()
}

// see notes that the vectors may have series of mirror.
func (m *Metrics) see(mirror string) {
	m.mu.Lock()
	m.seen[mirror] = true
	m.mu.Unlock()
}

// slogErrorLog hands promhttp's errors to slog.
type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) {
	l.log.Warn("metrics scrape", "err", v)
}
