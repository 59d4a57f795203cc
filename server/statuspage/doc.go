// Package statuspage serves Sluice's status page: an HTML page at "/" that
// shows the mirrors with their status and lag, per-table progress bars
// during initial loads and resyncs, a chart of each mirror's lag over the
// last hour and the recent events, and the JSON it is drawn from at
// "/api/status".
//
// The layers, in the order a request meets them:
//
//  1. Handler (statuspage.go): routes "/", "/api/status" and the embedded
//     assets, refuses methods other than GET and HEAD with 405, and turns a
//     panic into a 500 so that one bad request never takes the listener
//     down. It is mounted by the HTTP listener (package server/web), which
//     owns authentication; this package knows nothing of it.
//  2. Reader (query.go): reads the catalog's status views (schema
//     sluice_status: mirrors, mirror_tables, mirror_lag_history,
//     mirror_events) in one read-only REPEATABLE READ transaction, so the
//     four reads see one snapshot, and timestamps everything with the
//     catalog's clock. It never writes.
//  3. Page (assets/): plain HTML, CSS and one vanilla script, embedded with
//     go:embed; no build step and nothing fetched from the internet. The
//     script fetches /api/status every few seconds (the refresh_seconds the
//     JSON carries) and redraws the page without reloading it. It builds
//     every element with textContent and setAttribute, never innerHTML, so
//     mirror and table names (user input) cannot inject markup. The lag
//     chart is an inline SVG the script draws.
//
// Errors reading the catalog answer /api/status with 503 and a JSON body
// whose "error" says why; the page shows it in a banner and keeps the last
// data it drew. The JSON fields are documented in docs/status-page.md.
package statuspage
