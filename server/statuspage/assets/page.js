// Sluice status page. Fetches api/status every refresh_seconds and redraws
// the page from it. Every element is built with createElement, textContent
// and setAttribute, never innerHTML: names come from users.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  let renders = 0;
  let refreshMs = 3000;
  let lastGood = null;

  // el makes an element with attributes (null/undefined ones are left out)
  // and children (strings become text nodes).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    }
  }

  const nf = new Intl.NumberFormat("en-US");
  function fmtInt(n) { return n === null || n === undefined ? "unknown" : nf.format(n); }
  function fmtBytes(n) {
    if (n === null || n === undefined) return "unknown";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let v = n, i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + " " + units[i];
  }
  function fmtDuration(s) {
    if (s === null || s === undefined) return "unknown";
    const a = Math.abs(s);
    if (a < 1) return s.toFixed(2) + " s";
    if (a < 60) return s.toFixed(1) + " s";
    const sign = s < 0 ? "-" : "";
    if (a < 3600) return sign + two(Math.floor(a / 60), "min", Math.round(a % 60), "s");
    if (a < 86400) return sign + two(Math.floor(a / 3600), "h", Math.round((a % 3600) / 60), "min");
    return sign + two(Math.floor(a / 86400), "d", Math.round((a % 86400) / 3600), "h");
  }
  // two renders "4 min 12 s", leaving out a second part of 0.
  function two(n, unit, m, subunit) {
    return n + " " + unit + (m > 0 ? " " + m + " " + subunit : "");
  }
  // ago says how long before the catalog's clock (now) ts was.
  function ago(ts, now) {
    if (!ts) return null;
    const s = (now - Date.parse(ts)) / 1000;
    return s < 1 ? "just now" : fmtDuration(Math.round(s)) + " ago";
  }
  function localTime(ts) {
    const d = new Date(ts);
    return isNaN(d) ? String(ts) : d.toLocaleString();
  }

  // figure is one labelled number of a mirror: cls names it, value is the
  // raw value (data-value; empty for NULL), text and note what is shown.
  function figure(cls, label, value, text, note) {
    const dd = el("dd", { class: cls, "data-value": value === null || value === undefined ? "" : value },
      el("span", { class: value === null || value === undefined ? "value unknown" : "value" }, text),
      note ? el("small", null, note) : null);
    return el("div", null, el("dt", null, label), dd);
  }

  function renderMirror(m, now, historySeconds) {
    const art = el("article", { class: "mirror", "data-mirror": m.name, "data-status": m.status });
    art.append(el("div", { class: "mirror-head" },
      el("h3", { class: "mirror-name" }, m.name),
      el("span", { class: "status", "data-status": m.status }, m.status),
      m.resyncing ? el("span", { class: "status", "data-status": "RESYNC" }, "resyncing") : null,
      el("span", { class: "peers" }, m.source_peer + " \u2192 " + m.destination_peer)));
    if (m.error) art.append(el("p", { class: "mirror-error" }, m.error));

    const lagBytesNote = m.lag_measured_at ? "measured " + ago(m.lag_measured_at, now) : "never measured";
    let lagSecNote;
    if (m.lag_seconds !== null && m.lag_seconds !== undefined) {
      lagSecNote = "at the last batch, " + ago(m.last_synced_at, now);
    } else if (m.last_synced_at) {
      lagSecNote = "last batch applied " + ago(m.last_synced_at, now) + ", no commit time";
    } else {
      lagSecNote = "nothing applied yet";
    }
    art.append(el("dl", { class: "figures" },
      figure("lag-bytes", "Lag", m.lag_bytes, fmtBytes(m.lag_bytes), lagBytesNote),
      figure("lag-seconds", "Lag (time)", m.lag_seconds, fmtDuration(m.lag_seconds), lagSecNote),
      figure("rows-synced", "Rows synced", m.rows_synced, fmtInt(m.rows_synced),
        m.last_synced_at ? "last batch " + ago(m.last_synced_at, now) : null),
      m.position ? figure("position", "Position", m.position, m.position, m.slot_wal_status ? "slot WAL " + m.slot_wal_status : null) : null));

    const tbody = el("tbody");
    for (const t of m.tables) tbody.append(renderTable(m, t, now));
    art.append(el("table", { class: "tables" },
      el("thead", null, el("tr", null, el("th", null, "Table"), el("th", null, "Status"), el("th", null, "Step"),
        el("th", null, "Progress"), el("th", null, "Changes applied"))),
      tbody));
    art.append(renderChart(m, now, historySeconds));
    return art;
  }

  // loading reports whether a table is being loaded or resynced, when
  // its progress bars show.
  function loading(t) {
    return t.status === "snapshot" || t.status === "resync" || t.step === "copying" ||
      t.resync_status === "pending" || t.resync_status === "in_progress";
  }

  function progressBar(cls, value, max, what) {
    const attrs = { class: cls, "data-value": value === null ? "" : value, "data-max": max === null ? "" : max };
    if (max !== null && max > 0) {
      attrs.max = max;
      attrs.value = Math.min(value || 0, max);
    } else if (value) {
      attrs.max = value;
      attrs.value = value;
    } // else indeterminate: nothing known yet
    let text = fmtInt(value || 0) + " of " + (max === null ? "unknown" : fmtInt(max)) + " " + what;
    if (max > 0) text += " (" + Math.floor(100 * Math.min(value || 0, max) / max) + "%)";
    return [el("progress", attrs), el("span", { class: "progress-text " + cls + "-text" }, text)];
  }

  function renderTable(m, t, now) {
    const tr = el("tr", { class: "table-row", "data-mirror": m.name, "data-table": t.source_table,
      "data-status": t.status, "data-step": t.step });
    tr.append(el("td", null, el("span", { class: "source-table" }, t.source_table), " \u2192 ",
      el("span", { class: "destination-table" }, t.destination_table)));
    tr.append(el("td", null, el("span", { class: "status", "data-status": t.status }, t.status),
      t.resync_status ? el("small", { class: "resync-status" }, " resync " + t.resync_status) : null));
    tr.append(el("td", { class: "step" }, t.step || "",
      t.step_started_at ? el("small", { class: "progress-text" }, "since " + ago(t.step_started_at, now)) : null));
    const prog = el("td", { class: "progress" });
    if (loading(t)) {
      prog.append(...progressBar("rows-progress", t.rows_copied, t.rows_estimated, "rows"));
      prog.append(...progressBar("partitions-progress", t.partitions_done, t.partitions_total, "partitions"));
    } else {
      prog.append(el("span", { class: "progress-text" }, fmtInt(t.rows_copied) + " rows loaded"));
    }
    tr.append(prog);
    const errors = [];
    if (t.error) errors.push(el("p", { class: "table-error" }, t.error));
    if (t.resync_error) errors.push(el("p", { class: "table-error" }, "resync: " + t.resync_error));
    tr.append(el("td", { class: "num" },
      fmtInt(t.inserts) + " ins, " + fmtInt(t.updates) + " upd, " + fmtInt(t.deletes) + " del", ...errors));
    return tr;
  }

  // renderChart draws the mirror's lag over the history window: lag in
  // seconds (left axis) and in bytes (right axis), each scaled to its own
  // maximum, a gap where a sample has no value.
  function renderChart(m, now, historySeconds) {
    const W = 720, H = 180, L = 64, R = 72, T = 12, B = 24;
    const pw = W - L - R, ph = H - T - B;
    const start = now - historySeconds * 1000;
    const hist = m.lag_history || [];
    const chart = svgEl("svg", { class: "lag-chart", "data-mirror": m.name, "data-samples": hist.length,
      viewBox: "0 0 " + W + " " + H, role: "img", width: W, height: H });
    chart.append(svgEl("title", null, "Lag of " + m.name + " over the last " + fmtDuration(historySeconds)));
    chart.append(svgEl("rect", { class: "axis", x: L, y: T, width: pw, height: ph, fill: "none" }));
    const x = (ts) => L + pw * Math.min(1, Math.max(0, (Date.parse(ts) - start) / (now - start)));
    const series = [
      { key: "lag_seconds", fmt: fmtDuration, side: "left" },
      { key: "lag_bytes", fmt: fmtBytes, side: "right" },
    ];
    for (const s of series) {
      let max = 0;
      for (const p of hist) if (p[s.key] !== null && p[s.key] > max) max = p[s.key];
      const top = max > 0 ? max * 1.1 : 1;
      const y = (v) => T + ph * (1 - Math.max(0, v) / top);
      let d = "", pen = "M";
      const points = svgEl("g", { class: "points", "data-series": s.key });
      for (const p of hist) {
        const v = p[s.key];
        if (v === null || v === undefined) { pen = "M"; continue; }
        const cx = x(p.at), cy = y(v);
        d += pen + cx.toFixed(1) + " " + cy.toFixed(1) + " ";
        pen = "L";
        const c = svgEl("circle", { class: "point", "data-series": s.key, "data-at": p.at, "data-value": v,
          cx: cx.toFixed(1), cy: cy.toFixed(1), r: 2.5 });
        c.append(svgEl("title", null, localTime(p.at) + ": " + s.fmt(v) +
          (p.rows_per_second !== null && p.rows_per_second !== undefined ? ", " + fmtInt(Math.round(p.rows_per_second)) + " rows/s" : "")));
        points.append(c);
      }
      if (d) chart.append(svgEl("path", { class: "series-" + s.key, d: d.trim() }));
      chart.append(points);
      const ax = s.side === "left" ? L - 4 : L + pw + 4;
      const anchor = s.side === "left" ? "end" : "start";
      chart.append(svgEl("text", { x: ax, y: T + 8, "text-anchor": anchor, class: "axis-max", "data-series": s.key },
        max > 0 ? s.fmt(top) : "0"));
      chart.append(svgEl("text", { x: ax, y: T + ph, "text-anchor": anchor }, "0"));
    }
    chart.append(svgEl("text", { x: L, y: H - 6, "text-anchor": "start" }, "-" + fmtDuration(historySeconds)));
    chart.append(svgEl("text", { x: L + pw, y: H - 6, "text-anchor": "end" }, "now"));
    if (hist.length === 0) {
      chart.append(svgEl("text", { x: L + pw / 2, y: T + ph / 2, "text-anchor": "middle", class: "no-samples" },
        "no lag samples in this window"));
    }
    return el("div", { class: "chart-wrap" }, chart,
      el("div", { class: "legend" }, el("span", { class: "k-seconds" }, "\u2014 lag (time, left)"), "  ",
        el("span", { class: "k-bytes" }, "- - lag (bytes, right)")));
  }

  function renderEvents(events) {
    const tbody = document.querySelector("#events tbody");
    const rows = events.map((e) => el("tr", { class: "event", "data-mirror": e.mirror, "data-kind": e.kind, "data-at": e.at },
      el("td", null, el("time", { datetime: e.at }, localTime(e.at))),
      el("td", { class: "event-mirror" }, e.mirror),
      el("td", { class: "kind" }, e.kind),
      el("td", { class: "message" }, e.message)));
    tbody.replaceChildren(...rows);
  }

  function render(st) {
    const now = Date.parse(st.generated_at);
    const mirrors = st.mirrors.map((m) => renderMirror(m, now, st.history_seconds));
    document.getElementById("mirrors").replaceChildren(...mirrors);
    document.getElementById("no-mirrors").hidden = st.mirrors.length > 0;
    renderEvents(st.events);
    const up = document.getElementById("updated");
    up.textContent = localTime(st.generated_at);
    up.setAttribute("datetime", st.generated_at);
    document.body.dataset.generatedAt = st.generated_at;
    document.body.dataset.renders = String(++renders);
  }

  function showError(msg) {
    const b = document.getElementById("error-banner");
    let text = "Cannot show the current status: " + msg + ".";
    if (lastGood) text += " Showing data from " + localTime(lastGood) + ".";
    b.textContent = text;
    b.hidden = false;
    document.body.dataset.state = "error";
  }

  function hideError() {
    const b = document.getElementById("error-banner");
    b.hidden = true;
    b.textContent = "";
    document.body.dataset.state = "ok";
  }

  async function refresh() {
    try {
      const resp = await fetch("api/status", { cache: "no-store", headers: { Accept: "application/json" } });
      let st = null;
      try { st = await resp.json(); } catch (e) { st = null; }
      if (st && st.refresh_seconds > 0) {
        refreshMs = st.refresh_seconds * 1000;
        document.getElementById("refresh").textContent = String(st.refresh_seconds);
      }
      if (!resp.ok || !st || st.error) {
        showError(st && st.error ? st.error : "HTTP " + resp.status + " " + resp.statusText);
      } else {
        render(st);
        lastGood = st.generated_at;
        hideError();
      }
    } catch (e) {
      showError("cannot reach Sluice (" + e.message + ")");
    }
    setTimeout(refresh, refreshMs);
  }

  refresh();
})();
