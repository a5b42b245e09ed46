/* memagent inspector: one user's memory, read from this server's JSON API.
 *
 * Plain JS, no framework, no build step, nothing loaded from another host. Every
 * stored text goes into the page through textContent or an attribute value, never
 * through innerHTML: memories may hold hostile HTML. The API key (when the server
 * has keys) is kept in sessionStorage and sent as "Authorization: Bearer".
 */
"use strict";

(() => {
  const KEY = "memagent.apiKey";
  const PAGE = 50;
  const TYPES = ["person", "pet", "place", "organisation", "activity", "thing"];
  const $ = (id) => document.getElementById(id);
  const SVG_NS = $("graph").namespaceURI; // the inline <svg>'s namespace, so no URL is written here

  const state = { user: "", tab: "timeline", offset: 0, total: 0, overview: null, searching: false, seq: {} };

  // --- building elements: text only ----------------------------------------------------

  function fill(node, attrs, children) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const el = (tag, attrs, ...children) => fill(document.createElement(tag), attrs, children);
  const svg = (tag, attrs, ...children) => fill(document.createElementNS(SVG_NS, tag), attrs, children);

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function say(text, error) {
    const status = $("status");
    status.textContent = text || "";
    status.classList.toggle("error", Boolean(error));
  }

  const day = (iso) => (iso ? String(iso).slice(0, 10) : "");
  const minute = (iso) => (iso ? String(iso).slice(0, 16).replace("T", " ") : "");
  const num = (x, digits = 2) => (typeof x === "number" ? x.toFixed(digits) : "");
  const signed = (x) => (x > 0 ? "+" : "") + num(x, 1);

  // --- the API -------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, params) {
    const url = new URL(path, document.baseURI);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
    }
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = "Bearer " + key;
    const response = await fetch(url, { headers, credentials: "omit", cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
    }
    return body;
  }

  const user = () => encodeURIComponent(state.user);
  const at = () => ($("at").value ? $("at").value + "T23:59:59Z" : undefined);

  /** Run a loader; drop its result when a newer call of the same loader started meanwhile. */
  async function latest(name, load, show) {
    const seq = (state.seq[name] = (state.seq[name] || 0) + 1);
    try {
      const data = await load();
      if (seq === state.seq[name]) show(data);
    } catch (error) {
      if (seq === state.seq[name]) failed(error);
    }
  }

  function failed(error) {
    if (error instanceof ApiError && error.status === 401) {
      askForKey(sessionStorage.getItem(KEY) ? "That key was refused." : "This server needs an API key.");
      return;
    }
    say(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error), true);
  }

  // --- the key and the users -------------------------------------------------------------

  function askForKey(message) {
    $("key-form").hidden = false;
    $("forget-key").hidden = !sessionStorage.getItem(KEY);
    say(message, true);
    $("key").focus();
  }

  async function loadUsers() {
    try {
      const data = await api("v1/users");
      $("key-form").hidden = true;
      $("forget-key").hidden = !sessionStorage.getItem(KEY);
      const select = clear($("user"));
      select.append(el("option", { value: "" }, data.users.length ? "(pick a user)" : "(no user yet)"));
      for (const name of data.users) select.append(el("option", { value: name }, name));
      select.disabled = !data.users.length;
      if (data.users.includes(state.user)) select.value = state.user;
      say(`${data.users.length} user${data.users.length === 1 ? "" : "s"}`);
    } catch (error) {
      failed(error);
    }
  }

  async function pickUser(name) {
    state.user = name;
    state.searching = false;
    $("q").value = "";
    if (!name) {
      $("overview").textContent = "Pick a user.";
      return;
    }
    await latest("overview", () => api(`v1/inspect/users/${user()}`), (data) => {
      state.overview = data;
      showOverview(data);
      loadTimeline(null);
      loadTab();
    });
  }

  function showOverview(o) {
    $("overview").textContent =
      `${o.user_id}: ${o.episodes} episodes in ${Object.keys(o.sessions).length} sessions` +
      ` (${o.pending} not consolidated), ${o.open_statements} open of ${o.statements} profile statements,` +
      ` ${o.entities} entities, ${o.relations} relations, ${o.archived} archived,` +
      ` ${o.ratings} ratings, ${o.corrections} corrections`;
    const select = clear($("session"));
    select.append(el("option", { value: "" }, "(all)"));
    for (const [session, count] of Object.entries(o.sessions)) {
      select.append(el("option", { value: session }, `${session} (${count})`));
    }
  }

  // --- timeline and search ---------------------------------------------------------------

  function episodeItem(e, hit) {
    const badges = [];
    if (e.metadata && e.metadata.correction_of) badges.push(el("span", { class: "badge correction" }, "correction"));
    if (hit) {
      badges.push(el("span", { class: "badge" }, `score ${num(hit.score, 3)}`));
      for (const signal of hit.signals) badges.push(el("span", { class: "badge signal" }, signal));
    }
    return el("li", { class: "episode", "data-id": e.id, title: `episode ${e.id}` },
      el("div", { class: "meta" },
        el("time", { datetime: e.event_time }, minute(e.event_time)),
        el("span", { class: "role" }, e.role),
        el("span", { class: "session" }, e.session_id),
        ...badges),
      el("p", { class: "text" }, e.text));
  }

  function loadTimeline(offset) {
    const session = $("session").value;
    const total = session ? (state.overview.sessions[session] || 0) : state.overview.episodes;
    state.offset = offset === null ? Math.max(0, total - PAGE) : Math.max(0, offset);
    state.searching = false;
    latest("timeline", () => api(`v1/users/${user()}/episodes`,
      { offset: state.offset, limit: PAGE, session_id: session }), (page) => {
      state.total = page.total;
      const list = clear($("timeline"));
      for (const e of page.items.slice().reverse()) list.append(episodeItem(e, null));
      const last = page.offset + page.items.length;
      $("timeline-note").textContent = page.total
        ? `Episodes ${page.offset + 1} to ${last} of ${page.total}, newest first.` : "No episodes.";
      $("older").disabled = page.offset === 0;
      $("newer").disabled = page.next_offset === null;
    });
  }

  function search(query) {
    state.searching = true;
    latest("timeline", () => api(`v1/users/${user()}/search`,
      { q: query, k: 20, include_archived: $("include-archived").checked ? "true" : "" }), (hits) => {
      const list = clear($("timeline"));
      for (const hit of hits) list.append(episodeItem(hit.episode, hit));
      $("timeline-note").textContent = `${hits.length} hit${hits.length === 1 ? "" : "s"} for "${query}", best first.`;
      $("older").disabled = $("newer").disabled = true;
    });
  }

  // --- profile at a date -------------------------------------------------------------------

  function loadProfile() {
    latest("profile", () => api(`v1/inspect/users/${user()}/profile`, { at: at() }), showProfile);
  }

  function showProfile(data) {
    const when = Date.parse(data.at);
    const items = data.statements.filter((item) => $("history").checked || item.valid);
    const starts = data.statements.map((i) => Date.parse(i.statement.valid_from));
    const ends = data.statements.map((i) => (i.statement.valid_to ? Date.parse(i.statement.valid_to) : when));
    const low = Math.min(when, ...starts);
    const high = Math.max(when, ...starts, ...ends) + 1;
    const place = (t) => Math.min(100, Math.max(0, (100 * (t - low)) / (high - low)));
    const byId = new Map(data.statements.map((i) => [i.statement.id, i.statement]));

    const axis = clear($("axis"));
    axis.append(el("span", { class: "from" }, day(new Date(low).toISOString())),
      el("span", { class: "to" }, day(new Date(high).toISOString())),
      el("span", { class: "at" }, `at ${minute(data.at)} UTC`));

    const body = clear($("profile").tBodies[0]);
    for (const item of items) {
      const s = item.statement;
      const start = Date.parse(s.valid_from);
      const status = item.valid ? "valid" : start > when ? "not yet" : "closed";
      const bar = el("div", { class: "bar" + (s.valid_to ? "" : " open") });
      bar.style.left = `${place(start)}%`;
      bar.style.width = `${Math.max(0.5, place(s.valid_to ? Date.parse(s.valid_to) : high) - place(start))}%`;
      const marker = el("div", { class: "marker" });
      marker.style.left = `${place(when)}%`;
      const replaced = item.closed_by && byId.get(item.closed_by);
      body.append(el("tr", { class: `statement ${status.replace(" ", "-")}`, "data-id": s.id },
        el("td", {}, el("span", { class: "badge state" }, status), item.archived ? el("span", { class: "badge" }, "archived") : null),
        el("td", { class: "text" }, el("span", { class: "what" }, s.text), replaced ? el("div", { class: "muted" }, `replaced by: ${replaced.text}`) : null),
        el("td", {}, s.kind === "summary" ? "summary" : s.category),
        el("td", {}, el("time", { datetime: s.valid_from }, minute(s.valid_from))),
        el("td", {}, s.valid_to ? el("time", { datetime: s.valid_to }, minute(s.valid_to)) : "open"),
        el("td", { class: "interval" }, el("div", { class: "track" }, bar, marker))));
    }
    if (!items.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No statement.")));
  }

  // --- the graph ----------------------------------------------------------------------------

  /** Positions of the nodes: a circle, then a few hundred steps of a force layout
   *  (Fruchterman-Reingold: nodes repel, edges pull, the centre holds them). */
  function layout(nodes, edges, width, height) {
    const n = nodes.length;
    const radius = Math.min(width, height) * 0.38;
    const pos = nodes.map((_, i) => ({
      x: width / 2 + (n > 1 ? radius * Math.cos((2 * Math.PI * i) / n) : 0),
      y: height / 2 + (n > 1 ? radius * Math.sin((2 * Math.PI * i) / n) : 0),
    }));
    const index = new Map(nodes.map((node, i) => [node.entity.id, i]));
    const links = edges.map((e) => [index.get(e.relation.source), index.get(e.relation.target)])
      .filter(([a, b]) => a !== undefined && b !== undefined && a !== b);
    const k = 0.7 * Math.sqrt((width * height) / Math.max(n, 1));
    let step = width / 10;
    for (let round = 0; round < 300 && n > 1; round++) {
      const dx = new Float64Array(n);
      const dy = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          const x = pos[i].x - pos[j].x || 0.01;
          const y = pos[i].y - pos[j].y || 0.01;
          const d2 = x * x + y * y;
          const f = (k * k) / d2;
          dx[i] += x * f; dy[i] += y * f; dx[j] -= x * f; dy[j] -= y * f;
        }
      }
      for (const [a, b] of links) {
        const x = pos[a].x - pos[b].x;
        const y = pos[a].y - pos[b].y;
        const d = Math.sqrt(x * x + y * y) || 0.01;
        const f = d / k;
        dx[a] -= x * f; dy[a] -= y * f; dx[b] += x * f; dy[b] += y * f;
      }
      for (let i = 0; i < n; i++) {
        dx[i] += (width / 2 - pos[i].x) * 0.02 * k / 50;
        dy[i] += (height / 2 - pos[i].y) * 0.02 * k / 50;
        const d = Math.sqrt(dx[i] * dx[i] + dy[i] * dy[i]) || 1;
        const move = Math.min(d, step);
        pos[i].x = Math.min(width - 40, Math.max(40, pos[i].x + (dx[i] / d) * move));
        pos[i].y = Math.min(height - 30, Math.max(30, pos[i].y + (dy[i] / d) * move));
      }
      step *= 0.985;
    }
    return pos;
  }

  function loadGraph() {
    latest("graph", () => api(`v1/inspect/users/${user()}/graph`, { at: at(), limit: 150 }), showGraph);
  }

  function showGraph(data) {
    const picture = clear($("graph"));
    const [width, height] = [900, 600];
    const pos = layout(data.nodes, data.edges, width, height);
    const index = new Map(data.nodes.map((node, i) => [node.entity.id, i]));
    const names = new Map(data.nodes.map((node) => [node.entity.id, node.entity.name]));
    const edges = svg("g", { class: "edges" });
    for (const e of data.edges) {
      const a = pos[index.get(e.relation.source)];
      const b = pos[index.get(e.relation.target)];
      edges.append(svg("g", { class: "edge" + (e.archived ? " archived" : ""), "data-id": e.relation.id },
        svg("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y }),
        svg("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 4, "text-anchor": "middle" }, e.relation.relation),
        svg("title", {}, e.relation.text || `${names.get(e.relation.source)} ${e.relation.relation} ${names.get(e.relation.target)}`)));
    }
    const nodes = svg("g", { class: "nodes" });
    data.nodes.forEach((node, i) => {
      const type = TYPES.includes(node.entity.type) ? node.entity.type : "other";
      const aliases = node.entity.aliases.filter((a) => a !== node.entity.name);
      nodes.append(svg("g", { class: `node type-${type}`, "data-id": node.entity.id },
        svg("circle", { cx: pos[i].x, cy: pos[i].y, r: 7 + Math.min(node.degree, 8) }),
        svg("text", { x: pos[i].x + 12, y: pos[i].y + 4 }, node.entity.name),
        svg("title", {}, `${node.entity.name} (${node.entity.type})` + (aliases.length ? `, also: ${aliases.join(", ")}` : ""))));
    });
    picture.append(edges, nodes);

    const legend = clear($("legend"));
    for (const type of [...TYPES, "other"]) legend.append(el("li", { class: `type-${type}` }, type));
    $("graph-note").textContent = `${data.nodes.length} entities, ${data.edges.length} relations ` +
      (data.at ? `valid at ${minute(data.at)} UTC` : "open now") + (data.truncated ? " (the best connected only)" : "") + ".";
    const body = clear($("edges").tBodies[0]);
    for (const e of data.edges) {
      const r = e.relation;
      body.append(el("tr", { class: e.archived ? "archived" : null },
        el("td", { class: "text" }, r.text || `${names.get(r.source)} ${r.relation} ${names.get(r.target)}`),
        el("td", {}, r.relation), el("td", {}, minute(r.valid_from)), el("td", {}, r.valid_to ? minute(r.valid_to) : "open")));
    }
  }

  // --- forgetting ------------------------------------------------------------------------------

  function loadForgetting() {
    latest("forgetting", () => api(`v1/inspect/users/${user()}/forgetting`, { at: at() }), (data) => {
      for (const [id, items] of [["archived", data.archived], ["restored", data.restored]]) {
        const body = clear($(id).tBodies[0]);
        for (const item of items) {
          body.append(el("tr", { class: "item", "data-id": item.item_id },
            el("td", {}, item.kind), el("td", { class: "text" }, item.text),
            el("td", { class: "reason" }, item.reason), el("td", {}, num(item.importance)),
            el("td", {}, item.accesses), el("td", {}, signed(item.feedback))));
        }
        if (!items.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "None.")));
      }
      $("planned-title").textContent = `What a run at ${minute(data.at)} UTC would change (dry run)`;
      const body = clear($("planned").tBodies[0]);
      for (const p of data.planned) {
        body.append(el("tr", { class: "item", "data-id": p.decision.item_id },
          el("td", {}, p.decision.action), el("td", {}, p.decision.kind), el("td", { class: "text" }, p.text),
          el("td", { class: "reason" }, p.decision.reason), el("td", {}, num(p.decision.retention, 3))));
      }
      if (!data.planned.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "Nothing.")));
    });
  }

  // --- ratings and corrections ---------------------------------------------------------------

  function loadFeedback() {
    latest("feedback", () => api(`v1/inspect/users/${user()}/feedback`), (data) => {
      const corrections = clear($("corrections"));
      for (const c of data.corrections) {
        corrections.append(el("li", { class: "card correction", "data-id": c.episode.id },
          el("div", { class: "meta" }, el("time", { datetime: c.episode.event_time }, minute(c.episode.event_time))),
          el("p", {}, el("strong", {}, "Asked: "), c.question),
          c.answer !== null ? el("p", {}, el("strong", {}, "Answered: "), c.answer) : null,
          el("p", {}, el("strong", {}, "Corrected to: "), c.episode.text)));
      }
      if (!data.corrections.length) corrections.append(el("li", { class: "muted" }, "No correction."));
      const ratings = clear($("ratings"));
      for (const a of data.answers) {
        const items = el("ul", { class: "rated" });
        for (const item of a.items) {
          items.append(el("li", { class: item.delta > 0 ? "up" : "down" },
            el("span", { class: "badge" }, `${signed(item.delta)} ${item.kind}`), " ", item.text));
        }
        ratings.append(el("li", { class: "card rating", "data-id": a.trace_id },
          el("div", { class: "meta" }, el("time", { datetime: a.rated_at }, minute(a.rated_at)),
            el("span", { class: "badge" }, a.route)),
          el("p", {}, el("strong", {}, "Asked: "), a.question),
          el("p", {}, el("strong", {}, "Answered: "), a.answer), items));
      }
      if (!data.answers.length) ratings.append(el("li", { class: "muted" }, "No rating."));
      const body = clear($("weights").tBodies[0]);
      for (const [name, value] of Object.entries(data.weights)) body.append(el("tr", {}, el("td", {}, name), el("td", {}, num(value, 3))));
      if (!Object.keys(data.weights).length) body.append(el("tr", {}, el("td", { colspan: 2, class: "muted" }, "None learned yet.")));
    });
  }

  // --- tabs and wiring --------------------------------------------------------------------------

  const LOADERS = { profile: loadProfile, graph: loadGraph, forgetting: loadForgetting, feedback: loadFeedback };

  function loadTab() {
    if (state.user && LOADERS[state.tab]) LOADERS[state.tab]();
  }

  function showTab(name) {
    state.tab = name;
    for (const button of document.querySelectorAll("#tabs [data-tab]")) {
      button.setAttribute("aria-selected", String(button.dataset.tab === name));
      $(`tab-${button.dataset.tab}`).hidden = button.dataset.tab !== name;
    }
    loadTab();
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    loadUsers();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    state.user = "";
    clear($("timeline"));
    loadUsers();
  });
  $("user").addEventListener("change", (event) => pickUser(event.target.value));
  $("at").addEventListener("change", loadTab);
  $("now").addEventListener("click", () => { $("at").value = ""; loadTab(); });
  $("history").addEventListener("change", loadProfile);
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("q").value.trim();
    if (state.user && query) search(query);
  });
  $("clear-search").addEventListener("click", () => { $("q").value = ""; if (state.user) loadTimeline(null); });
  $("session").addEventListener("change", () => { if (state.user) loadTimeline(null); });
  $("older").addEventListener("click", () => loadTimeline(state.offset - PAGE));
  $("newer").addEventListener("click", () => loadTimeline(state.offset + PAGE));
  for (const button of document.querySelectorAll("#tabs [data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }

  loadUsers();
})();
