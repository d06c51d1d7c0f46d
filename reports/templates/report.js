(function () {
  "use strict";
  // Everything from the trace is untrusted: it is only ever written with textContent / setAttribute.
  var D = JSON.parse(document.getElementById("tokprof-data").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var KIND = { agent: "#3b63c4", chain: "#6d8fd8", llm: "#e08a3c", tool: "#4fa87a", retriever: "#a78bfa", "function": "#94a3b8" };
  var COLLAPSE = 1200, DIFF_COLLAPSE = 240;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function num(n) { return n === null || n === undefined ? "—" : Math.round(n).toLocaleString("en-US"); }
  function money(x) {
    if (x === null || x === undefined) return "—";
    var v = Number(x), a = Math.abs(v), s = v < 0 ? "-" : "";
    var t = a >= 100 ? a.toFixed(0) : a >= 1 ? a.toFixed(2) : (a >= 0.01 || a === 0) ? a.toFixed(4) : a.toFixed(6).replace(/0+$/, "");
    return s + D.symbol + t;
  }
  function kv(parent, label, value) {
    var s = el("span"); s.appendChild(document.createTextNode(label + " ")); s.appendChild(el("b", null, value));
    parent.appendChild(s);
  }

  // ---- tooltip ----------------------------------------------------------------------------------
  var tip = document.getElementById("tip");
  function showTip(ev, lines) {
    while (tip.firstChild) tip.removeChild(tip.firstChild);
    lines.forEach(function (l, i) {
      var d = el("div", i ? "dim" : null);
      if (i === 0) d.appendChild(el("b", null, l)); else d.textContent = l;
      tip.appendChild(d);
    });
    tip.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) x = ev.clientX - w - 14;
    if (y + h > window.innerHeight - 8) y = ev.clientY - h - 14;
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  function hideTip() { tip.hidden = true; }

  // ---- flame (icicle) chart -----------------------------------------------------------------------
  var nodes = D.flame, kids = {}, roots = [];
  nodes.forEach(function (n) {
    if (n.parent === null) roots.push(n); else (kids[n.parent] = kids[n.parent] || []).push(n);
  });
  // carried cost by default (what the tokens a span put into the conversation cost); carried tokens when
  // the run has no prices; "own" is the time-profiler view
  var metric = roots.some(function (r) { return r.carried > 0; }) ? "carried" : "carried_tokens";
  var focus = null, selected = null;
  var flameBox = document.getElementById("flame");
  function val(n) { return metric === "cost" ? n.cost : (metric === "carried" ? n.carried : (metric === "carried_tokens" ? n.carried_tokens : n.tokens)); }
  function drawFlame() {
    if (!nodes.length) return;
    while (flameBox.firstChild) flameBox.removeChild(flameBox.firstChild);
    var W = 1100, ROW = 24, maxDepth = 0;
    nodes.forEach(function (n) { if (n.depth > maxDepth) maxDepth = n.depth; });
    var svg = sv("svg", { viewBox: "0 0 " + W + " " + ((maxDepth + 1) * ROW), width: W, height: (maxDepth + 1) * ROW, role: "img" });
    var total = 0;
    var top = focus ? [focus] : roots;
    top.forEach(function (n) { total += val(n); });
    if (!(total > 0) || !isFinite(total)) total = top.reduce(function (a, n) { return Math.max(a, val(n)); }, 0) || 1;
    // Ancestors of the focused node span the full width (as in a zoomed flame graph).
    var chain = [], p = focus;
    while (p && p.parent !== null) { p = nodes[p.parent]; chain.unshift(p); }
    chain.forEach(function (a) { box(svg, a, 0, W, a.depth * ROW, ROW, W, true); });
    var x = 0;
    top.forEach(function (n) { var w = W * share(val(n), total); layout(svg, n, x, w, ROW, W); x += w; });
    flameBox.appendChild(svg);
  }
  // A part's share of a whole, always a finite number in [0, 1] (divide first: W * value could overflow).
  function share(part, whole) {
    var s = whole > 0 ? part / whole : 0;
    return isFinite(s) && s > 0 ? Math.min(s, 1) : 0;
  }
  function layout(svg, n, x, w, ROW, W) {
    if (!(w >= 0.5)) return;
    box(svg, n, x, w, n.depth * ROW, ROW, W, false);
    var v = val(n), cx = x;
    (kids[n.id] || []).forEach(function (c) {
      var cw = w * share(val(c), v);
      layout(svg, c, cx, cw, ROW, W);
      cx += cw;
    });
  }
  function box(svg, n, x, w, y, h, W, dim) {
    var g = sv("g", {});
    var r = sv("rect", { x: x.toFixed(2), y: y + 1, width: Math.max(0.5, w - 1).toFixed(2), height: h - 2, rx: 2,
      fill: KIND[n.kind] || KIND["function"], "class": "f" + (selected === n ? " sel" : ""), "data-node": n.id });
    if (dim) r.setAttribute("fill-opacity", "0.55");
    g.appendChild(r);
    if (w > 44) {
      var chars = Math.floor((w - 10) / 6.6), label = n.name;
      if (label.length > chars) label = label.slice(0, Math.max(1, chars - 1)) + "…";
      var t = sv("text", { x: (x + 5).toFixed(2), y: y + h / 2 + 4 });
      t.textContent = label;
      g.appendChild(t);
    }
    svg.appendChild(g);
  }
  function nodeLines(n) {
    var root = roots.reduce(function (a, r) { return a + val(r); }, 0) || 1;
    return [n.name,
      n.kind + " · " + num(n.calls) + (n.calls === 1 ? " call" : " calls") + " · " + num(n.ms) + " ms",
      "inclusive: " + num(n.tokens) + " tokens (" + (100 * val(n) / root).toFixed(1) + "% of " + metric + ")",
      "   in " + num(n["in"]) + " · out " + num(n.out) + " · cached " + num(n.cached) + " · " + money(n.cost),
      "exclusive (own): " + num(n.excl_tokens) + " tokens · " + money(n.excl_cost),
      "carried: " + money(n.excl_carried) + " (" + num(n.excl_carried_tokens) + " tokens it introduced) · box " + money(n.carried),
      n.llm_calls ? num(n.llm_calls) + " LLM calls under it" : "no LLM calls"];
  }
  if (nodes.length) {
    flameBox.addEventListener("mousemove", function (ev) {
      var t = ev.target.closest ? ev.target.closest("rect.f") : null;
      if (!t) { hideTip(); return; }
      showTip(ev, nodeLines(nodes[Number(t.getAttribute("data-node"))]));
    });
    flameBox.addEventListener("mouseleave", hideTip);
    flameBox.addEventListener("click", function (ev) {
      var t = ev.target.closest ? ev.target.closest("rect.f") : null;
      if (!t) return;
      var n = nodes[Number(t.getAttribute("data-node"))];
      selectNode(n, "flame-detail");
      focus = (focus === n || n.parent === null) ? null : n;
      drawFlame();
    });
    document.getElementById("flame-reset").addEventListener("click", function () { focus = null; drawFlame(); });
    document.querySelectorAll("[data-metric]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-metric") === metric));
      b.addEventListener("click", function () {
        metric = b.getAttribute("data-metric");
        document.querySelectorAll("[data-metric]").forEach(function (o) { o.setAttribute("aria-pressed", String(o === b)); });
        drawFlame();
      });
    });
    drawFlame();
  }

  function selectNode(n, target) {
    selected = n;
    var box = document.getElementById(target);
    if (!box) return;
    while (box.firstChild) box.removeChild(box.firstChild);
    box.appendChild(el("h3", null, n.name));
    var k = el("div", "kv");
    kv(k, "kind", n.kind); kv(k, "calls", num(n.calls)); kv(k, "tokens (incl)", num(n.tokens));
    kv(k, "own tokens", num(n.excl_tokens)); kv(k, "in", num(n["in"])); kv(k, "out", num(n.out));
    kv(k, "cached", num(n.cached)); kv(k, "cost (incl)", money(n.cost)); kv(k, "time", num(n.ms) + " ms");
    kv(k, "carried", money(n.excl_carried) + " (" + num(n.excl_carried_tokens) + " tokens)");
    box.appendChild(k);
    if (n.calls_idx.length) {
      var links = el("div", "calllinks");
      links.appendChild(el("span", "meta", "Biggest LLM calls:"));
      n.calls_idx.forEach(function (i) {
        var c = D.calls[i];
        var b = el("button", "link", "#" + (i + 1) + " (" + num(c["in"] + c.out) + " tok)");
        b.type = "button"; b.setAttribute("data-call", String(i));
        links.appendChild(b);
      });
      box.appendChild(links);
    }
    if (target === "flame-detail") drawFlame();
  }

  // ---- sortable table ----------------------------------------------------------------------------
  var table = document.getElementById("top-table");
  if (table) {
    table.querySelectorAll("th[data-key] button.sort").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var th = btn.parentNode, key = th.getAttribute("data-key"), isNum = th.hasAttribute("data-num");
        var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
        table.querySelectorAll("th[data-key]").forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.getAttribute("data-" + key), y = b.getAttribute("data-" + key), r;
          r = isNum ? Number(x) - Number(y) : x.localeCompare(y);
          return dir === "ascending" ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  // ---- clicks anywhere: flame nodes (table rows, graph nodes) and LLM calls ------------------------
  document.addEventListener("click", function (ev) {
    var t = ev.target.closest ? ev.target.closest("[data-flame],[data-call]") : null;
    if (!t || (flameBox && flameBox.contains(t))) return;
    var f = t.getAttribute("data-flame"), c = t.getAttribute("data-call");
    if (f !== null && f !== "") {
      selectNode(nodes[Number(f)], t.classList.contains("gnode") ? "graph-detail" : "flame-detail");
      if (c !== null && c !== "") openCall(Number(c), false);
    } else if (c !== null && c !== "") {
      openCall(Number(c), true);
    }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && ev.target.matches && ev.target.matches("tr.click")) ev.target.click();
  });
  document.querySelectorAll(".gbar").forEach(function (g) {
    g.addEventListener("mousemove", function (ev) {
      var c = D.calls[Number(g.getAttribute("data-call"))];
      if (c) showTip(ev, ["call #" + (c.i + 1) + " · " + c.model, num(c["in"]) + " input tokens · " + num(c.cached) + " cached", "click to open"]);
    });
    g.addEventListener("mouseleave", hideTip);
  });

  // ---- drill-down --------------------------------------------------------------------------------
  var drill = document.getElementById("drill-body"), current = 0, view = "messages";
  function msgBox(idx, cls) {
    var p = D.payloads[idx], role = p[0], name = p[1], text = p[2], tok = p[3];
    var m = el("div", "msg" + (cls ? " " + cls : ""));
    var h = el("div", "mh");
    h.appendChild(el("span", "role " + role, role));
    if (name) h.appendChild(el("span", "mono", name));
    if (cls === "removed" || cls === "added") h.appendChild(el("span", "badge", cls));
    h.appendChild(el("span", "tok", num(tok) + " tokens"));
    m.appendChild(h);
    var pre = el("pre");
    // in the before/after diff, removed and unchanged messages collapse to a few lines: the change is the point
    var limit = (cls === "removed" || cls === "same") ? DIFF_COLLAPSE : COLLAPSE;
    if (text.length > limit) {
      pre.textContent = text.slice(0, limit) + " …";
      if (limit === DIFF_COLLAPSE) pre.className = "collapsed";
      var more = el("button", "link", "show all " + num(text.length) + " characters");
      more.type = "button";
      more.addEventListener("click", function () { pre.textContent = text; pre.className = ""; more.remove(); });
      m.appendChild(pre); m.appendChild(more);
    } else {
      pre.textContent = text || "(empty)";
      m.appendChild(pre);
    }
    return m;
  }
  function lcs(a, b) {
    // Edit script between two lists of payload ids (short lists: a few hundred messages at most).
    var n = a.length, m = b.length, i, j, T = [];
    for (i = 0; i <= n; i++) { T.push(new Array(m + 1).fill(0)); }
    for (i = n - 1; i >= 0; i--) for (j = m - 1; j >= 0; j--)
      T[i][j] = a[i] === b[j] ? T[i + 1][j + 1] + 1 : Math.max(T[i + 1][j], T[i][j + 1]);
    var out = []; i = 0; j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { out.push(["same", a[i]]); i++; j++; }
      else if (T[i + 1][j] >= T[i][j + 1]) { out.push(["removed", a[i]]); i++; }
      else { out.push(["added", b[j]]); j++; }
    }
    for (; i < n; i++) out.push(["removed", a[i]]);
    for (; j < m; j++) out.push(["added", b[j]]);
    return out;
  }
  function openCall(i, scroll) {
    if (!drill || !D.calls.length) return;
    current = Math.max(0, Math.min(D.calls.length - 1, i));
    var c = D.calls[current];
    document.getElementById("drill-num").value = String(current + 1);
    while (drill.firstChild) drill.removeChild(drill.firstChild);
    var head = el("div", "detail");
    head.appendChild(el("h3", null, "Call #" + (current + 1) + " · " + c.name + " · " + c.model));
    var k = el("div", "kv");
    kv(k, "run", D.runs[c.run]); kv(k, "span", c.span_id); kv(k, "in", num(c["in"]) + " (" + c.src + ")");
    kv(k, "cached", num(c.cached)); kv(k, "out", num(c.out)); kv(k, "cost", money(c.cost)); kv(k, "time", num(c.ms) + " ms");
    if (c.tools) kv(k, "tool definitions", c.tools + " (" + num(c.tools_tokens) + " tokens)");
    if (c.after) { kv(k, "after: in", num(c.after["in"])); kv(k, "after: cost", money(c.after.cost)); }
    head.appendChild(k);
    drill.appendChild(head);
    if (c.ledger && c.ledger.length) {
      var t = el("table"), th = el("thead"), tr = el("tr");
      ["pass", "change", "evidence", "input before → after", "cost before → after", "risk"].forEach(function (x) { tr.appendChild(el("th", null, x)); });
      th.appendChild(tr); t.appendChild(th);
      var tb = el("tbody");
      c.ledger.forEach(function (r) {
        var row = el("tr");
        row.appendChild(el("td", "mono", r.pass)); row.appendChild(el("td", null, r.change));
        var ev = el("td"); ev.appendChild(el("span", "badge " + r.evidence, r.evidence)); row.appendChild(ev);
        row.appendChild(el("td", null, num(r.in_before) + " → " + num(r.in_after)));
        row.appendChild(el("td", null, money(r.cost_before) + " → " + money(r.cost_after)));
        row.appendChild(el("td", null, r.risk));
        tb.appendChild(row);
      });
      t.appendChild(tb);
      drill.appendChild(t);
      drill.appendChild(el("div", null, "\u00a0"));
    }
    if (view === "diff" && c.after) {
      var ops = lcs(c.msgs, c.after.msgs), changed = 0;
      ops.forEach(function (o) { if (o[0] !== "same") changed++; });
      drill.appendChild(el("p", "meta", changed ? changed + " messages differ (removed in red, added in green; unchanged dimmed)." : "The passes did not change this call's messages."));
      ops.forEach(function (o) { drill.appendChild(msgBox(o[1], o[0])); });
    } else {
      if (view === "diff") drill.appendChild(el("p", "meta", "No optimized version of this call."));
      c.msgs.forEach(function (idx) { drill.appendChild(msgBox(idx)); });
      if (!c.msgs.length) drill.appendChild(el("p", "empty", "No messages recorded for this call."));
      if (c.output !== null && c.output !== undefined) {
        drill.appendChild(el("p", "meta", "Response:"));
        drill.appendChild(msgBox(c.output));
      }
    }
    if (scroll) document.getElementById("drill").scrollIntoView({ block: "start" });
  }
  if (drill && D.calls.length) {
    document.getElementById("drill-prev").addEventListener("click", function () { openCall(current - 1, false); });
    document.getElementById("drill-next").addEventListener("click", function () { openCall(current + 1, false); });
    document.getElementById("drill-num").addEventListener("change", function (ev) { openCall(Number(ev.target.value) - 1, false); });
    document.getElementById("drill-biggest").addEventListener("click", function () {
      var best = 0;
      D.calls.forEach(function (c, i) { if (c["in"] + c.out > D.calls[best]["in"] + D.calls[best].out) best = i; });
      openCall(best, false);
    });
    document.querySelectorAll("[data-view]").forEach(function (b) {
      b.addEventListener("click", function () {
        view = b.getAttribute("data-view");
        document.querySelectorAll("[data-view]").forEach(function (o) { o.setAttribute("aria-pressed", String(o === b)); });
        openCall(current, false);
      });
    });
    openCall(0, false);
  }
})();
