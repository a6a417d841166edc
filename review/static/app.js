// cspine review: the QA worklist and case view. Plain JavaScript, no build
// step. Every call goes through the JSON API under /api/v1 (see
// /api/v1/openapi.json); the page never puts patient data in URLs.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, props, ...kids) => {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === "class") e.className = v;
        else if (k === "text") e.textContent = v;
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v);
      }
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  };

  // ---------------------------------------------------------------- API
  const state = { user: null, csrf: "", reasonMeanings: {} };

  class APIError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch("/api/v1" + path, opts);
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const err = (data && data.error) || { code: "http_" + res.status, message: res.statusText };
      if (res.status === 401 && path !== "/login") showLogin();
      throw new APIError(res.status, err.code, err.message);
    }
    return data;
  }

  function banner(msg) {
    const b = $("#banner");
    b.textContent = msg || "";
    b.hidden = !msg;
  }

  // ------------------------------------------------------------- routing
  function show(id) {
    for (const v of ["#login-view", "#worklist-view", "#case-view", "#transfers-view", "#admin-view"]) $(v).hidden = v !== id;
  }

  function showLogin() {
    state.user = null;
    $("#nav").hidden = true;
    show("#login-view");
    $("#login-user").focus();
  }

  async function route() {
    banner("");
    if (!state.user) {
      try {
        const s = await api("GET", "/session");
        setSession(s);
      } catch (e) {
        if (e.status !== 401) banner(e.message);
        return;
      }
    }
    const m = location.hash.match(/^#\/case\/(\d+)$/);
    if (m) openCase(Number(m[1]));
    else if (location.hash === "#/transfers") openTransfers();
    else if (location.hash === "#/admin" && state.user.role === "admin") openAdmin();
    else openWorklist();
  }

  function setSession(s) {
    state.user = s.user;
    state.csrf = s.csrf_token;
    $("#nav").hidden = false;
    $("#who").textContent = (s.user.display_name || s.user.username) + " (" + s.user.role + ")";
    $("#nav-admin").hidden = s.user.role !== "admin";
  }

  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#login-error").textContent = "";
    try {
      const s = await api("POST", "/login", { username: $("#login-user").value, password: $("#login-pass").value });
      $("#login-pass").value = "";
      setSession(s);
      route();
    } catch (e) {
      $("#login-error").textContent = e.message;
    }
  });

  $("#logout").addEventListener("click", async () => {
    try { await api("POST", "/logout"); } catch (e) { /* already gone */ }
    state.user = null;
    location.hash = "#/";
    showLogin();
  });

  window.addEventListener("hashchange", route);

  // ------------------------------------------------------------ worklist
  const wl = { page: 1, items: [], sel: 0, total: 0, perPage: 25 };
  const filterIds = ["f-reason", "f-status", "f-flagged", "f-from", "f-to", "f-modality", "f-sort"];
  const fmt = (v, d = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

  for (const id of filterIds) {
    $("#" + id).addEventListener("change", () => { wl.page = 1; loadWorklist(); });
  }
  $("#prev").addEventListener("click", () => { if (wl.page > 1) { wl.page--; loadWorklist(); } });
  $("#next").addEventListener("click", () => { if (wl.page * wl.perPage < wl.total) { wl.page++; loadWorklist(); } });

  function openWorklist() {
    show("#worklist-view");
    viewer.active = false;
    loadWorklist();
  }

  async function loadWorklist() {
    const q = new URLSearchParams();
    const map = { "f-reason": "reason", "f-status": "status", "f-flagged": "flagged", "f-from": "from", "f-to": "to", "f-modality": "modality", "f-sort": "sort" };
    for (const [id, key] of Object.entries(map)) {
      const v = $("#" + id).value;
      if (v) q.set(key, v);
    }
    q.set("page", wl.page);
    q.set("per_page", wl.perPage);
    let data;
    try {
      data = await api("GET", "/worklist?" + q.toString());
    } catch (e) {
      banner(e.message);
      return;
    }
    state.reasonMeanings = data.reason_meanings || {};
    wl.items = data.items;
    wl.total = data.total;
    wl.sel = 0;
    // Reason select and chips with counts.
    const rs = $("#f-reason");
    const cur = rs.value;
    rs.replaceChildren(el("option", { value: "", text: "any" }));
    const chips = $("#reason-counts");
    chips.replaceChildren();
    for (const key of Object.keys(state.reasonMeanings).sort()) {
      const n = data.reason_counts[key] || 0;
      rs.append(el("option", { value: key, text: key + " (" + n + ")" }));
      if (n > 0) {
        const chip = el("span", { class: "chip" + (cur === key ? " active" : ""), title: state.reasonMeanings[key], text: key + ": " + n,
          "data-reason": key });
        chip.addEventListener("click", () => { rs.value = cur === key ? "" : key; wl.page = 1; loadWorklist(); });
        chips.append(chip);
      }
    }
    rs.value = cur;
    const tb = $("#worklist tbody");
    tb.replaceChildren();
    data.items.forEach((it, i) => {
      const tr = el("tr", { "data-id": String(it.analysis_id) },
        el("td", { class: "flag", text: it.review_required ? "⚑" : "" }),
        el("td", { text: new Date(it.created_at).toISOString().slice(0, 16).replace("T", " ") }),
        el("td", { text: fmtDA(it.study_date) }),
        el("td", { text: it.modality }),
        el("td", null, ...it.reasons.map((r) => el("span", { class: "reason", title: r.meaning, text: r.key }))),
        el("td", { text: fmt(it.c7_confidence, 2) }),
        el("td", { text: fmt(it.c2c7_cobb_deg) + "°" }),
        el("td", null, el("span", { class: "state " + it.status, text: it.status })));
      tr.addEventListener("click", () => { location.hash = "#/case/" + it.analysis_id; });
      if (i === 0) tr.classList.add("sel");
      tb.append(tr);
    });
    if (data.items.length === 0) tb.append(el("tr", null, el("td", { colspan: "8", class: "hint", text: "Nothing matches these filters." })));
    const pages = Math.max(1, Math.ceil(data.total / wl.perPage));
    $("#page-info").textContent = "page " + wl.page + " of " + pages + " · " + data.total + " results";
    $("#prev").disabled = wl.page <= 1;
    $("#next").disabled = wl.page >= pages;
  }

  function fmtDA(da) {
    return da && da.length === 8 ? da.slice(0, 4) + "-" + da.slice(4, 6) + "-" + da.slice(6) : da || "";
  }

  document.addEventListener("keydown", (ev) => {
    if ($("#worklist-view").hidden || ev.target.closest("input, select, textarea")) return;
    const rows = [...document.querySelectorAll("#worklist tbody tr[data-id]")];
    if (!rows.length) return;
    if (ev.key === "j" || ev.key === "ArrowDown") wl.sel = Math.min(rows.length - 1, wl.sel + 1);
    else if (ev.key === "k" || ev.key === "ArrowUp") wl.sel = Math.max(0, wl.sel - 1);
    else if (ev.key === "Enter") { location.hash = "#/case/" + rows[wl.sel].dataset.id; return; }
    else return;
    ev.preventDefault();
    rows.forEach((r, i) => r.classList.toggle("sel", i === wl.sel));
  });

  // ------------------------------------------------------------ case view
  const PARAMS = [
    ["c2c7_cobb_deg", "Cobb C2–C7", "°"], ["c2_slope_deg", "C2 slope", "°"], ["c7_slope_deg", "C7 slope", "°"],
    ["c7_sup_slope_deg", "C7 superior slope", "°"], ["c2c7_sva_mm", "C2–C7 SVA", " mm"],
  ];
  const SEGMENTS = ["C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7"];

  const kase = { id: 0, data: null, lm: [], orig: [], current: null, decided: false, poll: 0 };

  async function openCase(id) {
    show("#case-view");
    clearTimeout(kase.poll);
    $("#action-message").textContent = "";
    $("#reject-form").hidden = true;
    $("#comment").value = "";
    let data;
    try {
      data = await api("GET", "/analyses/" + id);
    } catch (e) {
      banner(e.message);
      return;
    }
    kase.id = id;
    renderCase(data, true);
  }

  function renderCase(data, resetView) {
    kase.data = data;
    const a = data.analysis, st = data.study, rv = data.review;
    kase.decided = rv.state !== "pending";
    const human = rv.landmarks && rv.landmarks.length ? rv.landmarks : null;
    kase.orig = data.landmarks.map((l) => ({ name: l.name, x: l.x, y: l.y, confidence: l.confidence, stage: l.stage }));
    const src = human || kase.orig;
    kase.lm = src.map((l) => {
      const m = kase.orig.find((o) => o.name === l.name) || {};
      return { name: l.name, x: l.x, y: l.y, confidence: m.confidence, stage: m.stage };
    });
    kase.current = rv.parameters ? { parameters: rv.parameters, implausible: [] } : null;

    const head = $("#case-head");
    head.replaceChildren(
      el("div", { class: "who", text: (st.patient_name || "").replace(/\^/g, " ") + (st.patient_id ? " · " + st.patient_id : "") }),
      el("div", { text: [fmtDA(st.study_date), st.modality, st.view_position, st.study_description].filter(Boolean).join(" · ") }),
      el("div", { class: "hint", text: "Analysis " + a.id + " · model " + a.model.name + " " + a.model.version + " (" + a.model.mode + ") · facing " + a.facing +
        " · spacing " + a.spacing_source + (a.c7_confidence != null ? " · C7 confidence " + fmt(a.c7_confidence, 2) + ", obscuration " + a.c7_obscuration : "") }));
    const rs = $("#review-state");
    rs.replaceChildren(el("span", { class: "state " + rv.state, id: "state-badge", text: rv.state }));
    if (kase.decided && rv.decided_by) rs.append(" by " + rv.decided_by + " at " + new Date(rv.decided_at).toISOString().slice(0, 16).replace("T", " "));
    if (rv.state === "rejected" && rv.reason) rs.append(el("div", { text: "Reason: " + rv.reason }));
    if (rv.comment) rs.append(el("div", { class: "hint", text: "Comment: " + rv.comment }));

    const ul = $("#reasons");
    ul.replaceChildren(...(a.reasons.length ? a.reasons.map((r) => el("li", { "data-reason": r.key }, el("b", { text: r.key }), " – " + r.meaning))
      : [el("li", { class: "hint", text: "not flagged" })]));

    // C7 global vs refined.
    const box = $("#c7-stages-box");
    const disagree = a.reasons.some((r) => r.key === "c7_stage_disagreement");
    box.hidden = !data.c7_stages && !disagree;
    $("#c7-stages").hidden = !data.c7_stages;
    $("#c7-stages-note").hidden = !!data.c7_stages;
    if (data.c7_stages) {
      const tb = $("#c7-stages tbody");
      tb.replaceChildren();
      data.c7_stages.global.forEach((g, i) => {
        const r = data.c7_stages.refined[i];
        tb.append(el("tr", null, el("td", { text: g.name }), el("td", { text: fmt(g.x) + ", " + fmt(g.y) }),
          el("td", { text: fmt(r.x) + ", " + fmt(r.y) }), el("td", { text: fmt(data.c7_stages.distance_px[g.name]) + " px" })));
      });
      box.querySelector("h2").textContent = "C7: global vs refined" + (data.c7_stages.disagree ? " (disagree)" : "");
    }

    $("#approve").disabled = kase.decided || !data.image.available;
    $("#reject-open").disabled = kase.decided;
    $("#reopen").hidden = !(kase.decided && state.user.role === "admin");
    $("#lm-reset").disabled = kase.decided;
    renderParams();
    renderLandmarkTable();
    renderReports(data.reports);

    viewer.load(data, resetView);
  }

  function movedLandmarks() {
    return kase.lm.filter((l) => {
      const o = kase.orig.find((x) => x.name === l.name);
      return !o || o.x !== l.x || o.y !== l.y;
    });
  }

  function renderParams() {
    const a = kase.data.analysis.parameters;
    const cur = kase.current ? kase.current.parameters : a;
    const tb = $("#params tbody");
    tb.replaceChildren();
    const row = (key, label, unit, mv, cv) => {
      const d = mv != null && cv != null ? cv - mv : null;
      const tr = el("tr", { id: "param-" + key },
        el("th", { text: label }), el("td", { class: "machine", text: fmt(mv) + (mv != null ? unit : "") }),
        el("td", { class: "current", text: fmt(cv) + (cv != null ? unit : "") }),
        el("td", { class: "delta", text: d != null && Math.abs(d) >= 0.05 ? (d > 0 ? "+" : "") + d.toFixed(1) : "" }));
      if (d != null && Math.abs(d) >= 0.05) tr.classList.add("changed");
      tb.append(tr);
    };
    for (const [k, label, unit] of PARAMS) row(k, label, unit, a[k], cur[k]);
    for (const s of SEGMENTS) row("seg-" + s, "Segmental " + s, "°", a.segmental_deg[s], cur.segmental_deg[s]);
    const imp = $("#implausible");
    imp.replaceChildren(...((kase.current && kase.current.implausible) || []).map((w) => el("li", { text: w })));
    const moved = movedLandmarks().length;
    $("#approve").textContent = moved && !kase.decided ? "Approve with corrections (" + moved + " moved)" : "Approve";
  }

  function renderLandmarkTable() {
    const tb = $("#landmarks tbody");
    tb.replaceChildren(...kase.lm.map((l) => el("tr", { "data-name": l.name }, el("td", { text: l.name }), el("td", { text: fmt(l.x) }), el("td", { text: fmt(l.y) }),
      el("td", { text: fmt(l.confidence, 2) }), el("td", { text: l.stage || "" }))));
  }

  function renderReports(reports) {
    const tb = $("#reports tbody");
    tb.replaceChildren();
    let busy = false;
    for (const r of reports) {
      const dests = el("td");
      for (const t of r.transfers) {
        const line = el("div", { class: "send-" + (t.status === "sent" ? "sent" : t.status === "dead" || t.status === "failed" ? "failed" : "sending") },
          t.destination + " (" + t.ae_title + "): " + t.status + (t.attempts ? ", " + t.attempts + " attempt(s)" : "") + (t.last_error ? " – " + t.last_error : ""));
        if (t.status === "dead" || t.status === "failed") {
          line.append(" ", el("button", { type: "button", class: "retry", text: "Retry", onclick: () => retryTransfer(t.id) }));
        }
        dests.append(line);
      }
      if (!r.transfers.length) dests.textContent = "no destination known";
      if (r.send_status === "sending") busy = true;
      tb.append(el("tr", { "data-revision": String(r.revision), "data-flag": r.verification_flag },
        el("td", { text: String(r.revision) }), el("td", { text: r.verification_flag }),
        el("td", { class: "send-" + r.send_status, text: r.send_status.replace("_", " ") }), dests));
    }
    if (!reports.length) tb.append(el("tr", null, el("td", { colspan: "4", class: "hint", text: "No report issued yet." })));
    clearTimeout(kase.poll);
    if (busy) kase.poll = setTimeout(pollReports, 3000);
  }

  async function pollReports() {
    if ($("#case-view").hidden || !kase.id) return;
    try {
      const d = await api("GET", "/analyses/" + kase.id + "/reports");
      renderReports(d.reports);
    } catch (e) { /* shown on next action */ }
  }

  async function retryTransfer(id) {
    try {
      await api("POST", "/transfers/" + id + "/retry");
      pollReports();
    } catch (e) {
      $("#action-message").textContent = e.message;
    }
  }

  // Live remeasure: at most one request in flight; the latest positions win.
  const remeasure = { inflight: false, again: false };
  async function measureNow() {
    if (remeasure.inflight) { remeasure.again = true; return; }
    remeasure.inflight = true;
    try {
      const moved = movedLandmarks();
      if (moved.length === 0) kase.current = null;
      else {
        kase.current = await api("POST", "/analyses/" + kase.id + "/measure",
          { landmarks: kase.lm.map((l) => ({ name: l.name, x: l.x, y: l.y })) });
      }
      renderParams();
    } catch (e) {
      $("#action-message").textContent = e.message;
    } finally {
      remeasure.inflight = false;
      if (remeasure.again) { remeasure.again = false; measureNow(); }
    }
  }

  function landmarksChanged() {
    renderLandmarkTable();
    renderParams();
    measureNow();
    viewer.draw();
  }

  $("#lm-reset").addEventListener("click", () => {
    kase.lm = kase.orig.map((l) => ({ ...l }));
    landmarksChanged();
  });

  async function decide(kind, body) {
    $("#action-message").textContent = "Saving…";
    for (const b of ["#approve", "#reject-open", "#reject"]) $(b).disabled = true;
    try {
      const d = await api("POST", "/analyses/" + kase.id + "/review/" + kind, body);
      const data = await api("GET", "/analyses/" + kase.id);
      renderCase(data, false);
      $("#action-message").textContent = kind === "reject" ? "Rejected." :
        "Saved; amended report revision " + (d.report ? d.report.revision : "?") + " queued for sending.";
    } catch (e) {
      $("#action-message").textContent = e.message;
      $("#approve").disabled = kase.decided;
      $("#reject-open").disabled = kase.decided;
      $("#reject").disabled = false;
    }
  }

  $("#approve").addEventListener("click", () => {
    const moved = movedLandmarks();
    const body = { version: kase.data.review.version, comment: $("#comment").value };
    if (moved.length) decide("correct", { ...body, landmarks: kase.lm.map((l) => ({ name: l.name, x: l.x, y: l.y })) });
    else decide("approve", body);
  });
  $("#reject-open").addEventListener("click", () => { $("#reject-form").hidden = false; $("#reject").disabled = false; });
  $("#reject-cancel").addEventListener("click", () => { $("#reject-form").hidden = true; });
  $("#reject-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    decide("reject", { version: kase.data.review.version, reason: $("#reject-reason").value, comment: $("#comment").value });
  });
  $("#reopen").addEventListener("click", async () => {
    const reason = $("#comment").value.trim() || "reopened for another look";
    try {
      await api("POST", "/analyses/" + kase.id + "/review/reopen", { version: kase.data.review.version, reason });
      renderCase(await api("GET", "/analyses/" + kase.id), false);
    } catch (e) {
      $("#action-message").textContent = e.message;
    }
  });

  // ------------------------------------------------------------ sending
  const when = (t) => (t ? new Date(t).toISOString().slice(0, 16).replace("T", " ") : "");

  function openTransfers() {
    show("#transfers-view");
    viewer.active = false;
    loadTransfers();
  }
  $("#t-status").addEventListener("change", loadTransfers);

  async function loadTransfers() {
    const st = $("#t-status").value;
    let d;
    try {
      d = await api("GET", "/transfers" + (st ? "?status=" + st : ""));
    } catch (e) {
      banner(e.message);
      return;
    }
    const tb = $("#transfers tbody");
    tb.replaceChildren(...d.transfers.map((t) => el("tr", { "data-id": String(t.id) },
      el("td", { text: String(t.id) }), el("td", { text: String(t.report_id) }),
      el("td", { text: t.destination + " (" + t.ae_title + ")" }), el("td", { text: t.status }),
      el("td", { text: String(t.attempts) }), el("td", { text: t.last_error || "" }), el("td", { text: when(t.updated_at) }),
      el("td", null, t.status === "dead" || t.status === "failed"
        ? el("button", { type: "button", text: "Retry", onclick: async () => {
          try { await api("POST", "/transfers/" + t.id + "/retry"); loadTransfers(); } catch (e) { banner(e.message); }
        } }) : null))));
    if (!d.transfers.length) tb.append(el("tr", null, el("td", { colspan: "8", class: "hint", text: "No transfers in this state." })));
  }

  // -------------------------------------------------------------- admin
  function openAdmin() {
    show("#admin-view");
    viewer.active = false;
    loadAdmin();
  }

  async function loadAdmin() {
    try {
      const [u, a] = await Promise.all([api("GET", "/users"), api("GET", "/audit?limit=200")]);
      $("#users tbody").replaceChildren(...u.users.map((x) => el("tr", { "data-user": x.username }, el("td", { text: x.username }), el("td", { text: x.display_name }),
        el("td", { text: x.role }), el("td", { text: x.disabled ? "disabled" : "active" }), el("td", { text: when(x.last_login_at) || "never" }),
        el("td", null, x.id === state.user.id ? null : el("button", { type: "button", text: x.disabled ? "Enable" : "Disable", onclick: async () => {
          try { await api("POST", "/users/" + x.id + (x.disabled ? "/enable" : "/disable")); loadAdmin(); } catch (e) { banner(e.message); }
        } })))));
      $("#audit tbody").replaceChildren(...a.events.map((e) => el("tr", { title: [e.before ? "before: " + e.before : "", e.after ? "after: " + e.after : ""].join("\n") },
        el("td", { text: when(e.occurred_at) }), el("td", { text: e.actor }), el("td", { text: e.action }),
        el("td", { text: e.entity_type + " " + e.entity_id }), el("td", { text: e.remote_addr }))));
    } catch (e) {
      banner(e.message);
    }
  }

  $("#user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/users", { username: $("#u-name").value, display_name: $("#u-display").value, role: $("#u-role").value, password: $("#u-pass").value });
      $("#user-message").textContent = "Created " + $("#u-name").value + ".";
      $("#u-pass").value = "";
      loadAdmin();
    } catch (e) {
      $("#user-message").textContent = e.message;
    }
  });

  // Next pending flagged case (not this one).
  async function nextCase() {
    try {
      const d = await api("GET", "/worklist?status=pending&flagged=true&per_page=2");
      const it = d.items.find((x) => x.analysis_id !== kase.id);
      if (it) location.hash = "#/case/" + it.analysis_id;
      else $("#action-message").textContent = "No other pending flagged case.";
    } catch (e) {
      $("#action-message").textContent = e.message;
    }
  }
  $("#next-case").addEventListener("click", nextCase);

  // --------------------------------------------------------------- viewer
  // The canvas shows the server-rendered image (a whole-image PNG, plus a
  // full-resolution PNG of the visible region when zoomed in) with the
  // landmarks and measurement lines drawn over it in screen space.
  const viewer = {
    canvas: $("#view"), ctx: null, active: false,
    rows: 0, cols: 0, scale: 1, ox: 0, oy: 0,
    wc: 0, ww: 1, defWC: 0, defWW: 1, useDefault: true,
    full: null, hi: null, hiTimer: 0, gen: 0,
    drag: null, sel: -1, hover: -1,

    load(data, resetView) {
      this.active = true;
      this.ctx = this.canvas.getContext("2d");
      const im = data.image;
      $("#image-problem").hidden = im.available;
      $("#image-problem").textContent = im.problem || "";
      if (resetView || this.rows !== im.rows) {
        this.rows = im.rows; this.cols = im.columns;
        this.defWC = im.window_center; this.defWW = im.window_width;
        this.wc = this.defWC; this.ww = this.defWW; this.useDefault = true;
        this.full = null; this.hi = null; this.sel = -1;
        this.resize();
        this.fit();
        $("#wc").value = round2(this.wc); $("#ww").value = round2(this.ww);
        if (im.available) this.fetchFull();
      }
      this.draw();
    },

    resize() {
      const r = this.canvas.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      this.canvas.width = Math.max(1, Math.round(r.width * dpr));
      this.canvas.height = Math.max(1, Math.round(r.height * dpr));
      this.dpr = dpr;
    },

    fit() {
      const W = this.canvas.width, H = this.canvas.height;
      if (!this.rows) return;
      this.scale = Math.min(W / this.cols, H / this.rows) * 0.96;
      this.ox = (W - this.cols * this.scale) / 2;
      this.oy = (H - this.rows * this.scale) / 2;
      this.scheduleHi();
    },

    wlQuery() {
      return this.useDefault ? "" : "&wc=" + encodeURIComponent(this.wc) + "&ww=" + encodeURIComponent(this.ww);
    },

    fetchFull() {
      const gen = ++this.gen;
      const size = Math.min(2048, Math.max(this.rows, this.cols));
      const img = new Image();
      img.onload = () => { if (gen === this.gen) { this.full = img; this.draw(); } };
      img.onerror = () => { $("#image-problem").hidden = false; $("#image-problem").textContent = "The image could not be loaded."; };
      img.src = "/api/v1/analyses/" + kase.id + "/image?size=" + size + this.wlQuery();
      this.scheduleHi();
    },

    scheduleHi() {
      clearTimeout(this.hiTimer);
      this.hiTimer = setTimeout(() => this.fetchHi(), 200);
    },

    fetchHi() {
      if (!this.rows || !this.active) return;
      const fullRes = this.full ? this.full.naturalWidth / this.cols : 0;
      if (this.scale <= fullRes) { this.hi = null; this.draw(); return; }
      const W = this.canvas.width, H = this.canvas.height;
      const x0 = Math.max(0, Math.floor(-this.ox / this.scale)), y0 = Math.max(0, Math.floor(-this.oy / this.scale));
      const x1 = Math.min(this.cols, Math.ceil((W - this.ox) / this.scale)), y1 = Math.min(this.rows, Math.ceil((H - this.oy) / this.scale));
      if (x1 <= x0 || y1 <= y0) return;
      const size = Math.min(4096, Math.max(16, Math.round(Math.max((x1 - x0), (y1 - y0)) * Math.min(this.scale, 4))));
      const gen = this.gen;
      const img = new Image();
      const reg = { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
      img.onload = () => { if (gen === this.gen) { this.hi = { img, ...reg }; this.draw(); } };
      img.src = "/api/v1/analyses/" + kase.id + "/image?x=" + reg.x + "&y=" + reg.y + "&w=" + reg.w + "&h=" + reg.h + "&size=" + size + this.wlQuery();
    },

    // Source pixel centre (x, y) to canvas pixels.
    toScreen(x, y) { return [this.ox + (x + 0.5) * this.scale, this.oy + (y + 0.5) * this.scale]; },
    toSource(sx, sy) { return [(sx - this.ox) / this.scale - 0.5, (sy - this.oy) / this.scale - 0.5]; },

    draw() {
      if (!this.ctx) return;
      const c = this.ctx, W = this.canvas.width, H = this.canvas.height;
      c.setTransform(1, 0, 0, 1, 0, 0);
      c.fillStyle = "#000";
      c.fillRect(0, 0, W, H);
      c.imageSmoothingEnabled = this.scale < 2;
      if (this.full) c.drawImage(this.full, this.ox, this.oy, this.cols * this.scale, this.rows * this.scale);
      if (this.hi) c.drawImage(this.hi.img, this.ox + this.hi.x * this.scale, this.oy + this.hi.y * this.scale, this.hi.w * this.scale, this.hi.h * this.scale);
      this.drawOverlay();
    },

    drawOverlay() {
      const c = this.ctx, d = this.dpr;
      const P = {};
      for (const l of kase.lm) P[l.name] = l;
      const line = (a, b, color, width, dash) => {
        if (!a || !b) return;
        const [x1, y1] = this.toScreen(a.x, a.y), [x2, y2] = this.toScreen(b.x, b.y);
        c.strokeStyle = color; c.lineWidth = width * d; c.setLineDash(dash ? dash.map((v) => v * d) : []);
        c.beginPath(); c.moveTo(x1, y1); c.lineTo(x2, y2); c.stroke();
      };
      const extended = (a, b, color) => {
        if (!a || !b) return;
        const dx = b.x - a.x, dy = b.y - a.y, n = Math.hypot(dx, dy) || 1, ext = this.cols * 0.12;
        line({ x: a.x - dx / n * ext, y: a.y - dy / n * ext }, { x: b.x + dx / n * ext, y: b.y + dy / n * ext }, color, 1.5, [6, 4]);
      };
      // Endplates.
      line(P.C2_inf_ant, P.C2_inf_post, "#4dd0e1", 1.5);
      for (let n = 3; n <= 7; n++) {
        line(P["C" + n + "_sup_ant"], P["C" + n + "_sup_post"], "#4dd0e1", 1.5);
        line(P["C" + n + "_inf_ant"], P["C" + n + "_inf_post"], "#4dd0e1", 1.5);
      }
      // Extended C2 and C7 inferior endplates (Cobb), C2 plumb line and SVA.
      extended(P.C2_inf_ant, P.C2_inf_post, "#ffee58");
      extended(P.C7_inf_ant, P.C7_inf_post, "#ffee58");
      if (P.C2_centroid && P.C7_sup_post) {
        line(P.C2_centroid, { x: P.C2_centroid.x, y: P.C7_sup_post.y }, "#f48fb1", 1.5, [3, 3]);
        line({ x: P.C2_centroid.x, y: P.C7_sup_post.y }, P.C7_sup_post, "#f48fb1", 1.5);
      }
      // Global-stage C7 beside the refined one.
      const st = kase.data && kase.data.c7_stages;
      if (st) {
        for (const g of st.global) {
          const [x, y] = this.toScreen(g.x, g.y), r = 5 * d;
          c.setLineDash([]); c.strokeStyle = "#ff9800"; c.lineWidth = 1.5 * d;
          c.beginPath(); c.moveTo(x, y - r); c.lineTo(x + r, y); c.lineTo(x, y + r); c.lineTo(x - r, y); c.closePath(); c.stroke();
          const o = kase.orig.find((l) => l.name === g.name);
          if (o) line(g, o, "#ff9800", 1, [2, 3]);
        }
      }
      // Where the machine put the landmarks that were moved.
      const moved = new Set(movedLandmarks().map((l) => l.name));
      for (const o of kase.orig) {
        if (!moved.has(o.name)) continue;
        const [x, y] = this.toScreen(o.x, o.y);
        c.setLineDash([]); c.strokeStyle = "rgba(255,255,255,0.7)"; c.lineWidth = 1 * d;
        c.beginPath(); c.arc(x, y, 4 * d, 0, 2 * Math.PI); c.stroke();
        line(o, P[o.name], "rgba(255,255,255,0.7)", 1, [2, 2]);
      }
      // Landmarks.
      c.setLineDash([]);
      kase.lm.forEach((l, i) => {
        const [x, y] = this.toScreen(l.x, l.y);
        const conf = l.confidence == null ? 1 : l.confidence;
        const col = moved.has(l.name) ? "#ffffff" : conf >= 0.8 ? "#66bb6a" : conf >= 0.5 ? "#ffa726" : "#ef5350";
        const r = (i === this.sel || i === this.hover ? 6 : 4) * d;
        c.fillStyle = col; c.strokeStyle = "#000"; c.lineWidth = 1 * d;
        c.beginPath(); c.arc(x, y, r, 0, 2 * Math.PI); c.fill(); c.stroke();
        if (i === this.sel || i === this.hover || this.scale > 1.5) {
          c.font = (11 * d) + "px system-ui, sans-serif"; c.fillStyle = "#fff";
          c.fillText(l.name, x + 8 * d, y - 6 * d);
        }
      });
    },

    hit(sx, sy) {
      let best = -1, bd = 10 * this.dpr;
      kase.lm.forEach((l, i) => {
        const [x, y] = this.toScreen(l.x, l.y);
        const dd = Math.hypot(x - sx, y - sy);
        if (dd <= bd) { bd = dd; best = i; }
      });
      return best;
    },

    zoomAt(f, sx, sy) {
      const ns = Math.min(40, Math.max(0.02, this.scale * f));
      f = ns / this.scale;
      this.ox = sx - (sx - this.ox) * f;
      this.oy = sy - (sy - this.oy) * f;
      this.scale = ns;
      this.draw();
      this.scheduleHi();
    },

    setWL(wc, ww) {
      this.wc = wc; this.ww = Math.max(ww, 1e-3); this.useDefault = false;
      $("#wc").value = round2(this.wc); $("#ww").value = round2(this.ww);
      clearTimeout(this.wlTimer);
      this.wlTimer = setTimeout(() => { this.hi = null; this.fetchFull(); }, 150);
    },
  };

  const round2 = (v) => Math.round(v * 100) / 100;

  function canvasPoint(ev) {
    const r = viewer.canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * viewer.dpr, (ev.clientY - r.top) * viewer.dpr];
  }

  const cv = viewer.canvas;
  cv.addEventListener("contextmenu", (ev) => ev.preventDefault());
  cv.addEventListener("pointerdown", (ev) => {
    cv.focus();
    const [sx, sy] = canvasPoint(ev);
    if (ev.button === 2) {
      viewer.drag = { kind: "wl", x: ev.clientX, y: ev.clientY, wc: viewer.wc, ww: viewer.ww };
    } else {
      const i = kase.decided ? -1 : viewer.hit(sx, sy);
      if (i >= 0) {
        viewer.sel = i;
        viewer.drag = { kind: "landmark", i };
      } else {
        viewer.drag = { kind: "pan", sx, sy, ox: viewer.ox, oy: viewer.oy };
        cv.classList.add("panning");
      }
    }
    cv.setPointerCapture(ev.pointerId);
    viewer.draw();
  });
  cv.addEventListener("pointermove", (ev) => {
    const [sx, sy] = canvasPoint(ev);
    const d = viewer.drag;
    if (!d) {
      const h = kase.decided ? -1 : viewer.hit(sx, sy);
      if (h !== viewer.hover) { viewer.hover = h; cv.classList.toggle("over-landmark", h >= 0); viewer.draw(); }
      return;
    }
    if (d.kind === "pan") {
      viewer.ox = d.ox + (sx - d.sx); viewer.oy = d.oy + (sy - d.sy);
      viewer.draw();
    } else if (d.kind === "landmark") {
      let [x, y] = viewer.toSource(sx, sy);
      x = Math.min(viewer.cols - 1, Math.max(0, x));
      y = Math.min(viewer.rows - 1, Math.max(0, y));
      kase.lm[d.i].x = Math.round(x * 100) / 100;
      kase.lm[d.i].y = Math.round(y * 100) / 100;
      viewer.draw();
      renderParams();
      measureNow();
    } else if (d.kind === "wl") {
      const k = Math.max(d.ww, 1) / 300;
      viewer.setWL(d.wc + (ev.clientY - d.y) * k, d.ww + (ev.clientX - d.x) * k);
    }
  });
  const endDrag = (ev) => {
    const d = viewer.drag;
    viewer.drag = null;
    cv.classList.remove("panning");
    if (d && d.kind === "pan") viewer.scheduleHi();
    if (d && d.kind === "landmark") landmarksChanged();
  };
  cv.addEventListener("pointerup", endDrag);
  cv.addEventListener("pointercancel", endDrag);
  cv.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const [sx, sy] = canvasPoint(ev);
    viewer.zoomAt(Math.exp(-ev.deltaY * 0.0015), sx, sy);
  }, { passive: false });

  cv.addEventListener("keydown", (ev) => {
    const n = kase.lm.length;
    const step = ev.shiftKey ? 10 : 1;
    const W = cv.width, H = cv.height;
    switch (ev.key) {
      case "Tab": viewer.sel = ((viewer.sel + (ev.shiftKey ? -1 : 1)) % n + n) % n; viewer.draw(); break;
      case "Escape": viewer.sel = -1; viewer.draw(); break;
      case "+": case "=": viewer.zoomAt(1.25, W / 2, H / 2); break;
      case "-": viewer.zoomAt(0.8, W / 2, H / 2); break;
      case "0": viewer.fit(); viewer.draw(); break;
      case "n": nextCase(); break;
      case "b": location.hash = "#/"; break;
      case "A": if (!$("#approve").disabled) $("#approve").click(); break;
      case "R": if (!$("#reject-open").disabled) { $("#reject-open").click(); $("#reject-reason").focus(); } break;
      case "ArrowLeft": case "ArrowRight": case "ArrowUp": case "ArrowDown": {
        if (viewer.sel < 0 || kase.decided) return;
        const l = kase.lm[viewer.sel];
        if (ev.key === "ArrowLeft") l.x = Math.max(0, l.x - step);
        if (ev.key === "ArrowRight") l.x = Math.min(viewer.cols - 1, l.x + step);
        if (ev.key === "ArrowUp") l.y = Math.max(0, l.y - step);
        if (ev.key === "ArrowDown") l.y = Math.min(viewer.rows - 1, l.y + step);
        landmarksChanged();
        break;
      }
      default: return;
    }
    ev.preventDefault();
  });

  $("#zoom-in").addEventListener("click", () => viewer.zoomAt(1.25, cv.width / 2, cv.height / 2));
  $("#zoom-out").addEventListener("click", () => viewer.zoomAt(0.8, cv.width / 2, cv.height / 2));
  $("#zoom-fit").addEventListener("click", () => { viewer.fit(); viewer.draw(); });
  $("#wl-reset").addEventListener("click", () => {
    viewer.wc = viewer.defWC; viewer.ww = viewer.defWW; viewer.useDefault = true;
    $("#wc").value = round2(viewer.wc); $("#ww").value = round2(viewer.ww);
    viewer.hi = null; viewer.fetchFull();
  });
  for (const id of ["#wc", "#ww"]) {
    $(id).addEventListener("change", () => {
      const wc = Number($("#wc").value), ww = Number($("#ww").value);
      if (Number.isFinite(wc) && Number.isFinite(ww) && ww > 0) viewer.setWL(wc, ww);
    });
  }
  window.addEventListener("resize", () => {
    if ($("#case-view").hidden) return;
    viewer.resize(); viewer.fit(); viewer.draw();
  });

  // Hooks for the browser tests: where a landmark is on the page (CSS
  // pixels) and the current positions.
  window.cspine = {
    screenPos(name) {
      const l = kase.lm.find((x) => x.name === name);
      if (!l) return null;
      const [sx, sy] = viewer.toScreen(l.x, l.y);
      const r = viewer.canvas.getBoundingClientRect();
      return { x: r.left + sx / viewer.dpr, y: r.top + sy / viewer.dpr };
    },
    sourceToPage(x, y) {
      const [sx, sy] = viewer.toScreen(x, y);
      const r = viewer.canvas.getBoundingClientRect();
      return { x: r.left + sx / viewer.dpr, y: r.top + sy / viewer.dpr };
    },
    landmark(name) { return kase.lm.find((x) => x.name === name) || null; },
    imageLoaded() { return !!viewer.full; },
    imageSrc() { return viewer.full ? viewer.full.src : ""; },
    regionLoaded() { return !!viewer.hi; },
    measuring() { return remeasure.inflight; },
  };

  route();
})();
