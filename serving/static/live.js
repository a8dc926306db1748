// callintent live pages: the wallboard (/live) and the agent screen-pop (/live/calls/{id}).
// Plain browser JavaScript, no build step and no dependencies. Data come from the server's
// Server-Sent Events feeds; every text is written with textContent (never as HTML).
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const ROUTE_WORDS = {priority_sales: "priority sales", standard: "standard", screen: "screen",
                       undetermined: "undetermined", pending: "not decided yet"};
  const SVG = "http://www.w3.org/2000/svg";

  function withToken(path) {
    return token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function pct(p) { return p === null || p === undefined ? "–" : Math.round(p * 100) + "%"; }
  function routeOf(call) { return call.decision ? call.decision.route : "pending"; }
  function setStatus(text, cls) {
    const node = document.getElementById("status");
    node.textContent = text;
    node.className = "status " + (cls || "");
  }

  // The running buying probability as a line over the seconds of the call (30 s window at least).
  function drawSpark(svg, series) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const box = svg.viewBox.baseVal, w = box.width, h = box.height;
    const span = Math.max(30, series.length ? series[series.length - 1][0] : 0);
    const guide = document.createElementNS(SVG, "line");
    guide.setAttribute("x1", 0); guide.setAttribute("x2", w);
    guide.setAttribute("y1", h / 2); guide.setAttribute("y2", h / 2);
    guide.setAttribute("class", "guide");
    svg.appendChild(guide);
    if (!series.length) return;
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", series.map(([t, p]) => (t / span * w).toFixed(1) + "," + ((1 - p) * h).toFixed(1)).join(" "));
    line.setAttribute("class", "line");
    svg.appendChild(line);
    svg.dataset.points = String(series.length);
  }

  // The transcript with each signal's evidence marked (offsets index call.transcript).
  function drawTranscript(node, call) {
    node.textContent = "";
    const text = call.transcript || "";
    const spans = [];
    for (const signal of call.signals) {
      for (const ev of signal.evidence) spans.push({start: ev.start, end: ev.end, names: [signal.name]});
    }
    spans.sort((a, b) => a.start - b.start || b.end - a.end);
    const merged = [];
    for (const s of spans) {
      const last = merged[merged.length - 1];
      if (last && s.start < last.end) {
        last.end = Math.max(last.end, s.end);
        for (const n of s.names) if (!last.names.includes(n)) last.names.push(n);
      } else merged.push({...s, names: [...s.names]});
    }
    let at = 0;
    for (const s of merged) {
      if (s.start < at || s.end > text.length) continue;
      node.appendChild(document.createTextNode(text.slice(at, s.start)));
      const mark = el("mark", "evidence", text.slice(s.start, s.end));
      mark.title = s.names.join(", ").replace(/_/g, " ");
      mark.dataset.signals = s.names.join(" ");
      node.appendChild(mark);
      at = s.end;
    }
    node.appendChild(document.createTextNode(text.slice(at)));
  }

  function routeBadge(node, call) {
    const route = routeOf(call);
    node.textContent = ROUTE_WORDS[route] || route;
    node.className = "route route-" + route;
  }

  // -- wallboard ---------------------------------------------------------------------------------

  function wallboard() {
    const calls = new Map();
    const body = document.getElementById("calls");
    const routeFilter = document.getElementById("route-filter");
    const sourceFilter = document.getElementById("source-filter");
    routeFilter.value = params.get("route") || "";
    const wantedSource = params.get("source") || "";

    function syncUrl() {
      const next = new URLSearchParams(location.search);
      for (const [key, sel] of [["route", routeFilter], ["source", sourceFilter]]) {
        if (sel.value) next.set(key, sel.value); else next.delete(key);
      }
      history.replaceState(null, "", location.pathname + (next.toString() ? "?" + next : ""));
    }
    function sources() {
      const seen = new Set([wantedSource, sourceFilter.value].filter(Boolean));
      for (const call of calls.values()) if (call.source) seen.add(call.source);
      const current = sourceFilter.value || wantedSource;
      const options = [...seen].sort();
      if (options.join("\n") === [...sourceFilter.options].slice(1).map(o => o.value).join("\n")) return;
      sourceFilter.textContent = "";
      sourceFilter.appendChild(el("option", "", "all")).value = "";
      for (const s of options) sourceFilter.appendChild(el("option", "", s)).value = s;
      sourceFilter.value = current;
    }
    function row(call) {
      const tr = el("tr");
      tr.dataset.callId = call.call_id;
      tr.dataset.route = routeOf(call);
      tr.dataset.source = call.source;
      const link = el("a", "", call.call_id);
      link.href = withToken("/live/calls/" + encodeURIComponent(call.call_id));
      const idCell = el("td", "call-id");
      idCell.appendChild(link);
      tr.appendChild(idCell);
      tr.appendChild(el("td", "source", [call.source || "unknown source", call.campaign].filter(Boolean).join(" / ")));
      const sparkCell = el("td", "spark-cell");
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("viewBox", "0 0 120 28");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("class", "spark");
      sparkCell.appendChild(svg);
      tr.appendChild(sparkCell);
      drawSpark(svg, call.series);
      tr.appendChild(el("td", "prob", pct(call.buying_intent)));
      tr.appendChild(el("td", "label", call.label ? call.label + " (" + pct(call.confidence) + ")" : "listening…"));
      const routeCell = el("td");
      const badge = el("span");
      routeBadge(badge, call);
      routeCell.appendChild(badge);
      tr.appendChild(routeCell);
      tr.appendChild(el("td", "signals", call.signals.map(s => s.name.replace(/_/g, " ")).join(", ")));
      tr.appendChild(el("td", "heard", call.audio_seconds.toFixed(0) + " s"));
      return tr;
    }
    function render() {
      sources();
      const route = routeFilter.value, source = sourceFilter.value;
      const shown = [...calls.values()]
        .filter(c => (!route || routeOf(c) === route) && (!source || c.source === source))
        .sort((a, b) => a.started_at.localeCompare(b.started_at));
      body.textContent = "";
      for (const call of shown) body.appendChild(row(call));
      document.getElementById("empty").hidden = shown.length > 0;
    }
    routeFilter.addEventListener("change", () => { syncUrl(); render(); });
    sourceFilter.addEventListener("change", () => { syncUrl(); render(); });

    const feed = new EventSource(withToken("/v1/calls/live/events"));
    feed.addEventListener("open", () => setStatus("live", "ok"));
    feed.addEventListener("floor", (e) => {
      calls.clear();
      for (const call of JSON.parse(e.data).calls) calls.set(call.call_id, call);
      render();
    });
    feed.addEventListener("call", (e) => { const call = JSON.parse(e.data); calls.set(call.call_id, call); render(); });
    feed.addEventListener("ended", (e) => { calls.delete(JSON.parse(e.data).call_id); render(); });
    feed.addEventListener("error", () => {
      setStatus(feed.readyState === EventSource.CLOSED ? "no access (API key or view token needed)" : "reconnecting…", "bad");
    });
    render();
  }

  // -- screen-pop --------------------------------------------------------------------------------

  function screenPop() {
    const callId = decodeURIComponent(location.pathname.split("/").pop());
    document.getElementById("call-id").textContent = callId;
    const feed = new EventSource(withToken("/v1/calls/" + encodeURIComponent(callId) + "/events"));
    feed.addEventListener("open", () => setStatus("live", "ok"));
    feed.addEventListener("waiting", () => setStatus("waiting for the call to start…", "wait"));
    feed.addEventListener("call", (e) => {
      const call = JSON.parse(e.data);
      const origin = [call.source ? "Source: " + call.source : "Unknown source", call.campaign ? "campaign " + call.campaign : ""];
      document.getElementById("origin").textContent = origin.filter(Boolean).join(" · ");
      document.getElementById("headline").textContent = call.headline;
      document.getElementById("confidence").textContent = call.label ? "Confidence " + pct(call.confidence) : "";
      routeBadge(document.getElementById("route"), call);
      document.getElementById("probability").textContent = pct(call.buying_intent);
      document.getElementById("next-step").textContent = call.next_step || (call.decision ? "No suggestion for this route." : "Decided once the caller has said enough.");
      drawSpark(document.getElementById("spark"), call.series);
      drawTranscript(document.getElementById("transcript"), call);
      document.body.dataset.state = call.state;
      if (call.state === "ended") {
        setStatus("call ended", "ended");
        feed.close();
      } else setStatus("live", "ok");
    });
    feed.addEventListener("error", () => {
      if (feed.readyState === EventSource.CLOSED && document.body.dataset.state !== "ended") {
        setStatus("no access: the view token is missing, expired or for another call", "bad");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.page === "wallboard") wallboard(); else screenPop();
  });
})();
