// Qorgau's built-in dashboard: plain JavaScript, no framework, no build step.
//
// Views (hash routes): #/ the risk map and the workplaces by level, #/workplace/ID the live
// page of one workplace, #/alerts the alert feed. Every number shown comes from the API; the
// page only formats and draws it. Streams are read with fetch() so that the token travels in
// the Authorization header, never in a URL (EventSource cannot send headers).
"use strict";
(() => {
  const TOKEN_KEY = "qorgau.token";
  const CHART_WINDOW_MS = 15 * 60 * 1000;
  const view = document.getElementById("view");
  let me = null;
  let cleanup = () => {};

  // ------------------------------------------------------------------ helpers

  /** Build an element: h("a", {href: "#/"}, "text", child…). Text never becomes markup. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** Replace an element's content, skipping the empty parts (null, false). */
  function fill(el, ...parts) {
    el.replaceChildren(...parts.filter((p) => p !== null && p !== undefined && p !== false));
  }
  const show = (...parts) => fill(view, ...parts);

  function fmt(value, digits = 3) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    if (value === 0) return "0";
    const magnitude = Math.floor(Math.log10(Math.abs(value)));
    const decimals = Math.max(0, digits - 1 - magnitude);
    return value.toFixed(Math.min(decimals, 4));
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const m = Math.round(seconds / 60);
    if (m < 60) return `${m} min`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
  }

  /** A time as people read it: always with its zone (e.g. "16:27 GMT+5"). */
  function timeIn(zone, value, withDate = false) {
    const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone, timeZoneName: "short" };
    if (withDate) Object.assign(options, { day: "2-digit", month: "short" });
    return new Intl.DateTimeFormat("en-GB", options).format(new Date(value));
  }

  const LEVEL_NAMES = { 1: "acceptable", 2: "low", 3: "moderate", 4: "high", 5: "very high" };

  function badge(kind, value, title) {
    const text = value === null || value === undefined ? "—" : String(value);
    return h("span", { class: `badge ${kind}-${text.replace(".", "_")}`, title }, text);
  }

  /** A result from too little data always says so: never a bare class. */
  function provisional(notEnough, title) {
    return notEnough
      ? h("span", { class: "badge provisional", title: title || "coverage below the norms' minimum: the class and В are not a finding" }, "provisional: not enough data")
      : null;
  }

  function quantityLabel(s) {
    const names = {
      noise_laeq: "Noise LAeq",
      noise_lamax: "Noise LAmax",
      noise_lcpeak: "Peak LCpeak",
      vib_hav: "Hand-arm vibration a_hv",
      vib_wbv_x: "Whole-body vibration X",
      vib_wbv_y: "Whole-body vibration Y",
      vib_wbv_z: "Whole-body vibration Z",
      gas: "Gas",
      dust: "Dust",
    };
    const name = names[s.quantity] || s.quantity;
    return s.substance ? `${name} ${s.substance}` : name;
  }

  // ------------------------------------------------------------------ API access

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function call(method, path, body) {
    const headers = { Authorization: `Bearer ${token()}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      signOut("Your token was refused (unknown, revoked or expired). Sign in again.");
      throw new ApiError(401, "signed out");
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.blob();
    if (!response.ok) throw new ApiError(response.status, data.detail || response.statusText);
    return data;
  }

  const get = (path) => call("GET", path);

  /** Read a Server-Sent Events stream with fetch; reconnect with backoff until aborted. */
  function stream(path, onEvent, onState) {
    const controller = new AbortController();
    let attempt = 0;
    (async () => {
      while (!controller.signal.aborted) {
        try {
          const response = await fetch(path, {
            headers: { Authorization: `Bearer ${token()}`, Accept: "text/event-stream" },
            signal: controller.signal,
          });
          if (response.status === 401) {
            signOut("Your token was refused. Sign in again.");
            return;
          }
          if (!response.ok) throw new Error(`stream answered ${response.status}`);
          onState("live");
          attempt = 0;
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              let event = "message";
              const data = [];
              for (const line of block.split("\n")) {
                if (line.startsWith("event:")) event = line.slice(6).trim();
                else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
              }
              if (data.length) onEvent(event, JSON.parse(data.join("\n")));
            }
          }
        } catch (error) {
          if (controller.signal.aborted) return;
        }
        onState("reconnecting");
        attempt += 1;
        const wait = Math.min(10000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    })();
    return () => controller.abort();
  }

  function liveDot() {
    const dot = h("span", { class: "live-dot", dataset: { state: "connecting" } }, "connecting");
    const set = (state) => {
      dot.dataset.state = state;
      dot.textContent = state;
    };
    return [dot, set];
  }

  // ------------------------------------------------------------------ sign-in

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    location.hash = "#/";
    render(message);
  }

  function signInView(message) {
    const input = h("input", {
      id: "token",
      type: "password",
      autocomplete: "off",
      placeholder: "qg_…",
      required: true,
      "aria-label": "API token",
    });
    const error = h("p", { class: "error", role: "alert" }, message || "");
    const form = h(
      "form",
      { class: "card sign-in", id: "sign-in" },
      h("h1", {}, "Sign in"),
      h("p", {}, "Paste your Qorgau API token. It stays in this browser tab only (session storage) and is sent to this server alone."),
      h("label", { for: "token" }, "API token"),
      input,
      h("button", { type: "submit" }, "Sign in"),
      error,
      h(
        "p",
        { class: "hint" },
        "No token? An administrator creates one on the server, for example ",
        h("code", {}, "qorgau tokens create --role safety_officer --enterprise CODE"),
        " or ",
        h("code", {}, "qorgau tokens create --role inspector --region Karaganda"),
        ". ",
        h("code", {}, "qorgau demo"),
        " prints ready-made tokens.",
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      try {
        me = await get("/api/v1/me");
        render();
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        error.textContent = err.status === 401 ? "That token was refused." : `Could not sign in: ${err.message}`;
      }
    });
    view.replaceChildren(form);
    input.focus();
  }

  // ------------------------------------------------------------------ the risk map

  async function mapView(alive) {
    const [map, workplaces] = await Promise.all([
      get("/api/v1/map"),
      get("/api/v1/export/workplaces?format=json").catch(() => ({ rows: [] })),
    ]);
    const board = h("div", { class: "board" });
    for (let level = 1; level <= 5; level++) {
      const here = map.enterprises.filter((e) => e.level === level);
      board.append(
        h(
          "section",
          { class: `column level-${level}` },
          h("h3", {}, `Level ${level}`, h("small", {}, LEVEL_NAMES[level])),
          here.map((e) =>
            h(
              "div",
              { class: "tile" },
              h("strong", {}, e.name),
              h("span", {}, `${e.region || "no region"} · ПР ${fmt(e.mean_pr)} · ${Math.round(e.headcount_scored)} persons`),
              provisional(e.not_enough_data, `not enough data at: ${(e.workplaces_not_enough_data || []).join(", ")}`),
            ),
          ),
          here.length ? null : h("p", { class: "empty" }, "none"),
        ),
      );
    }
    const unscored = map.enterprises.filter((e) => e.level === null);
    const rows = [...workplaces.rows].sort((a, b) => (b.level || 0) - (a.level || 0) || (b.pr || 0) - (a.pr || 0));
    const idOf = await workplaceIds();
    if (!alive()) return;
    const table = h(
      "table",
      { class: "grid", id: "workplaces" },
      h("thead", {}, h("tr", {}, ["Enterprise", "Workplace", "Profession", "Headcount, persons", "Class", "В (1–5)", "ПР", "Level", ""].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        rows.map((r) => {
          const id = idOf.get(`${r.enterprise_code}/${r.workplace_code}`);
          return h(
            "tr",
            {},
            h("td", {}, r.enterprise_code),
            h("td", {}, id ? h("a", { href: `#/workplace/${id}` }, r.workplace_name) : r.workplace_name),
            h("td", {}, r.profession || "—"),
            h("td", { class: "num" }, r.headcount ?? "—"),
            h("td", {}, badge("class", r.b_class), provisional(r.b_not_enough_data)),
            h("td", { class: "num" }, r.b ?? "—"),
            h("td", { class: "num" }, fmt(r.pr)),
            h("td", {}, r.level ? badge("level", r.level, r.level_name) : h("span", { class: "muted" }, r.unscored_reason || "not scored")),
            h("td", {}, id ? h("a", { href: `#/workplace/${id}`, class: "button small" }, "Live") : null),
          );
        }),
      ),
    );
    show(
      h("h1", {}, "Risk map"),
      h("p", { class: "muted" }, `Enterprises by integral occupational risk (headcount-weighted mean ПР of their workplaces), ${map.period_from} … ${map.period_to}.`),
      board,
      unscored.length ? h("p", { class: "muted" }, `Not scored yet: ${unscored.map((e) => e.name).join(", ")}.`) : null,
      h("h2", {}, "Workplaces by risk level"),
      rows.length ? table : h("p", { class: "muted" }, "No workplaces visible to this token."),
    );
  }

  /** "enterprise/workplace" code → workplace id, from the registry the token may read. */
  async function workplaceIds() {
    const ids = new Map();
    if (me.role === "scoring") return ids;
    const enterprises = await get("/api/v1/enterprises?limit=1000");
    await Promise.all(
      enterprises.items.map(async (e) => {
        const list = await get(`/api/v1/enterprises/${e.id}/workplaces?limit=1000`);
        for (const w of list.items) ids.set(`${e.code}/${w.code}`, w.id);
      }),
    );
    return ids;
  }

  // ------------------------------------------------------------------ alerts

  const SEVERITY_RANK = { info: 0, warning: 1, high: 2, critical: 3 };

  function alertRow(a, timezone) {
    const canAct = me.role === "admin" || me.role === "safety_officer";
    const act = (action) => async (event) => {
      const body = { by: me.name };
      if (action === "acknowledge" && SEVERITY_RANK[a.severity] >= SEVERITY_RANK.high) {
        // The API requires the action taken for high and critical alerts.
        const taken = (window.prompt("Action taken (required for high and critical alerts)") || "").trim();
        if (!taken) return;
        body.action = taken;
      }
      event.target.disabled = true;
      try {
        const updated = await call("POST", `/api/v1/alerts/${a.alert_id}/${action}`, body);
        event.target.closest("li").replaceWith(alertRow(updated, timezone));
      } catch (err) {
        event.target.disabled = false;
        event.target.title = err.message;
      }
    };
    return h(
      "li",
      { class: `alert severity-${a.severity}`, dataset: { alertId: a.alert_id, state: a.state } },
      h("div", { class: "alert-head" }, badge("severity", a.severity), h("span", { class: "state" }, a.state), h("span", { class: "kind" }, a.kind.replaceAll("_", " ")), h("time", {}, timeIn(timezone, a.opened_at, true))),
      h("p", {}, a.message),
      h(
        "div",
        { class: "alert-foot" },
        h("span", { class: "muted" }, [a.enterprise, a.workplace, a.sensor].filter(Boolean).join(" · ")),
        a.acknowledged_by ? h("span", { class: "muted" }, `acknowledged by ${a.acknowledged_by}`) : null,
        canAct && a.state === "open" ? h("button", { type: "button", class: "small", onclick: act("acknowledge") }, "Acknowledge") : null,
        canAct && a.state !== "resolved" ? h("button", { type: "button", class: "small secondary", onclick: act("resolve") }, "Resolve") : null,
      ),
    );
  }

  /** A live list of alerts: the active ones from the API, then every transition streamed. */
  function alertFeed(filter, timezone) {
    const list = h("ul", { class: "alerts", id: "alert-feed" });
    const [dot, setState] = liveDot();
    const shown = new Map();
    const place = (a) => {
      if (!filter(a)) return;
      const row = alertRow(a, timezone);
      const old = shown.get(a.alert_id);
      if (old) old.replaceWith(row);
      else list.prepend(row);
      shown.set(a.alert_id, row);
      empty.hidden = shown.size > 0;
    };
    const empty = h("p", { class: "muted" }, "No active alerts.");
    get("/api/v1/alerts?state=active&limit=200").then((page) => {
      const items = [...page.items].sort((x, y) => SEVERITY_RANK[x.severity] - SEVERITY_RANK[y.severity] || x.opened_at.localeCompare(y.opened_at));
      items.forEach(place);
    });
    const stop = stream("/api/v1/alerts/stream", (event, message) => {
      if (event !== "alert") return;
      const known = shown.get(message.alert_id);
      // A transition carries the alert's current state; fetch the row for the full picture.
      if (known || message.state !== "resolved") {
        get(`/api/v1/alerts/${message.alert_id}`).then(place).catch(() => {});
      }
    }, setState);
    return [h("div", { class: "feed" }, h("div", { class: "feed-head" }, h("h2", {}, "Alerts"), dot), list, empty), stop];
  }

  async function alertsView() {
    const [feed, stop] = alertFeed(() => true, undefined);
    view.replaceChildren(h("h1", {}, "Alerts"), h("p", { class: "muted" }, "Open and acknowledged alerts of the enterprises this token sees, updated as they happen."), feed);
    return stop;
  }

  // ------------------------------------------------------------------ the workplace page

  function gauge(r) {
    const top = Math.max(r.limit || 0, r.projected || 0, r.so_far || 0) * 1.15 || 1;
    const pct = (v) => `${Math.max(0, Math.min(100, (100 * (v || 0)) / top))}%`;
    const over = r.projected !== null && r.limit !== null && r.projected >= r.limit;
    return h(
      "div",
      { class: "gauge", role: "img", "aria-label": `${r.metric} so far ${fmt(r.so_far)} ${r.unit}, projected ${fmt(r.projected)} ${r.unit}, limit ${fmt(r.limit)} ${r.unit}` },
      h("div", { class: `projected${over ? " over" : ""}`, style: null, dataset: { width: pct(r.projected) } }),
      h("div", { class: "so-far", dataset: { width: pct(r.so_far) } }),
      r.action_level !== null ? h("div", { class: "mark action", dataset: { left: pct(r.action_level) }, title: `action level ${fmt(r.action_level)} ${r.unit}` }) : null,
      r.limit !== null ? h("div", { class: "mark limit", dataset: { left: pct(r.limit) }, title: `limit ${fmt(r.limit)} ${r.unit}` }) : null,
    );
  }

  /** Widths and positions are set through the CSSOM (the page's policy forbids inline style). */
  function applyGeometry(root) {
    for (const el of root.querySelectorAll("[data-width]")) el.style.width = el.dataset.width;
    for (const el of root.querySelectorAll("[data-left]")) el.style.left = el.dataset.left;
  }

  function exposureCard(s) {
    const r = s.running;
    const body = r
      ? [
          h("div", { class: "figures" },
            h("div", {}, h("small", {}, `${r.metric} so far`), h("b", { class: "so-far-value" }, `${fmt(r.so_far)} ${r.unit}`)),
            h("div", {}, h("small", {}, "projected end of shift"), h("b", { class: r.limit !== null && r.projected >= r.limit ? "over" : "" }, `${fmt(r.projected)} ${r.unit}`)),
            h("div", {}, h("small", {}, "limit"), h("b", {}, r.limit === null ? "—" : `${fmt(r.limit)} ${r.unit}`)),
          ),
          gauge(r),
          h("p", { class: "muted" },
            r.time_to_limit_s === null ? "Limit not reached this shift at the current rate." : r.time_to_limit_s === 0 ? "Limit already reached." : `Limit reached in ${duration(r.time_to_limit_s)} at the current rate (mean of the last ${duration(r.rate_window_s)}).`),
        ]
      : [h("p", { class: "muted" }, s.note || "No daily value for this quantity; its chart shows the readings.")];
    return h(
      "article",
      { class: "card exposure", dataset: { sensorId: s.sensor_id } },
      h("header", {}, h("h3", {}, quantityLabel(s)), badge("class", s.working_class, "class if the shift goes on as so far")),
      h("p", { class: "muted sensor-code" }, `${s.sensor} · ${s.samples} readings this shift`),
      body,
    );
  }

  class SensorChart {
    constructor(sensor, timezone, width) {
      this.sensor = sensor;
      this.xs = [];
      this.ys = [];
      this.lines = sensor.lines;
      const label = `${quantityLabel(sensor)}, ${sensor.unit}`;
      this.el = h("figure", { class: "card chart", dataset: { sensorId: sensor.sensor_id, points: 0 } }, h("figcaption", {}, h("b", {}, label), h("span", { class: "latest" }, "—")));
      const colours = { action: "#ef6c00", limit: "#c62828", short_term: "#6a1b9a", ceiling: "#7f0000", floor: "#283593" };
      const series = [
        {},
        { label, stroke: "#1565c0", width: 1.5, fill: "rgba(21,101,192,0.08)", points: { show: false } },
        ...this.lines.map((line) => ({ label: line.label, stroke: colours[line.kind], width: 1.5, dash: [6, 4], points: { show: false } })),
      ];
      this.plot = new uPlot(
        {
          width,
          height: 220,
          ms: 1,
          tzDate: (ts) => uPlot.tzDate(new Date(ts), timezone),
          series,
          scales: { x: { time: true }, y: { range: (u, min, max) => this.range(min, max) } },
          axes: [{ stroke: "#555", grid: { stroke: "#eee" }, values: (u, splits) => splits.map((v) => timeIn(timezone, v)) }, { stroke: "#555", grid: { stroke: "#eee" }, label: sensor.unit, labelSize: 18, size: 56 }],
          legend: { live: false },
        },
        this.data(),
        this.el,
      );
    }

    range(min, max) {
      const values = [min, max, ...this.lines.map((l) => l.value)].filter(Number.isFinite);
      if (!values.length) return [0, 1];
      let lo = Math.min(...values);
      let hi = Math.max(...values);
      if (this.sensor.quantity.startsWith("noise")) lo = Math.max(0, Math.floor((lo - 5) / 10) * 10);
      else lo = Math.min(0, lo);
      if (hi === lo) hi = lo + 1;
      return [lo, hi + (hi - lo) * 0.08];
    }

    data() {
      return [this.xs, this.ys, ...this.lines.map((l) => this.xs.map(() => l.value))];
    }

    add(times, values) {
      for (let i = 0; i < times.length; i++) {
        const t = times[i];
        const last = this.xs.length ? this.xs[this.xs.length - 1] : -Infinity;
        if (t > last) {
          this.xs.push(t);
          this.ys.push(values[i]);
        } else if (t < last) {
          // Out of order (a replayed backlog): keep the arrays sorted for the plot.
          const at = this.xs.findIndex((x) => x >= t);
          if (this.xs[at] !== t) {
            this.xs.splice(at, 0, t);
            this.ys.splice(at, 0, values[i]);
          }
        }
      }
      const cut = this.xs.findIndex((x) => x >= this.xs[this.xs.length - 1] - CHART_WINDOW_MS);
      if (cut > 0) {
        this.xs.splice(0, cut);
        this.ys.splice(0, cut);
      }
      this.plot.setData(this.data());
      this.el.dataset.points = String(this.xs.length);
      this.el.dataset.last = String(this.ys[this.ys.length - 1]);
      this.el.querySelector(".latest").textContent = `latest ${fmt(this.ys[this.ys.length - 1])} ${this.sensor.unit}`;
    }
  }

  async function workplaceView(id, alive) {
    const exposure = await get(`/api/v1/workplaces/${id}/live/exposure`);
    if (!alive()) return;
    const zone = exposure.timezone;
    const head = h("section", { class: "card summary", id: "summary" });
    const cards = h("section", { class: "cards", id: "exposure" });
    const charts = h("section", { class: "charts", id: "charts" });
    const [dot, setState] = liveDot();
    const [feed, stopAlerts] = alertFeed((a) => a.workplace === exposure.workplace && a.enterprise === exposure.enterprise, zone);
    const reports = h(
      "p",
      { class: "reports" },
      "Shift report: ",
      ["pdf", "xlsx", "csv"].map((format) => h("button", { type: "button", class: "small secondary", onclick: () => download(id, exposure.shift, format) }, format.toUpperCase())),
    );
    show(
      h("div", { class: "title-row" }, h("h1", { id: "workplace-name" }, exposure.workplace_name), dot),
      head,
      h("h2", {}, "Exposure this shift"),
      cards,
      h("h2", {}, "Live readings", h("small", {}, ` last ${CHART_WINDOW_MS / 60000} min, times in ${zone}`)),
      charts,
      feed,
      reports,
    );

    const width = Math.max(320, Math.min(620, charts.clientWidth / (charts.clientWidth > 900 ? 2 : 1) - 24));
    const bySensor = new Map();
    for (const s of exposure.sensors) {
      const chart = new SensorChart(s, zone, width);
      bySensor.set(s.sensor_id, chart);
      charts.append(chart.el);
    }
    const showExposure = (e) => {
      const elapsed = Math.min(1, e.elapsed_s / e.shift.duration_s);
      fill(
        head,
        h("div", { class: "facts" },
          h("div", {}, h("small", {}, "enterprise"), h("b", {}, e.enterprise)),
          h("div", {}, h("small", {}, `shift ${e.shift.shift} of ${e.shift.date}`), h("b", {}, `${timeIn(zone, e.shift.start)}–${timeIn(zone, e.shift.end)}`)),
          h("div", {}, h("small", {}, e.running ? "elapsed" : "shift ended"), h("b", {}, duration(e.elapsed_s))),
          h("div", {}, h("small", {}, "class (if the shift goes on as so far)"), badge("class", e.working_class)),
          h("div", {}, h("small", {}, "harmfulness index В (1–5)"), h("b", { class: "big", id: "b-index" }, e.B ?? "—", h("small", {}, e.B_continuous !== null ? ` (${fmt(e.B_continuous)})` : ""))),
          h("div", { id: "data-sufficiency" }, h("small", {}, "data so far"), provisional(e.not_enough_data) || h("b", {}, `coverage ${fmt((e.coverage_min ?? 0) * 100)} %`)),
        ),
        h("div", { class: "progress", title: `${Math.round(elapsed * 100)} % of the shift` }, h("div", { dataset: { width: `${elapsed * 100}%` } })),
        e.deciding_factors.length ? h("p", { class: "muted" }, `Deciding factors: ${e.deciding_factors.join(", ")}.`) : null,
      );
      cards.replaceChildren(...e.sensors.filter((s) => s.running || s.note).map(exposureCard));
      applyGeometry(head);
      applyGeometry(cards);
    };
    showExposure(exposure);

    // The charts start with the last minutes from the database, then follow the broker.
    const since = new Date(Date.now() - CHART_WINDOW_MS).toISOString();
    await Promise.all(
      exposure.sensors.map(async (s) => {
        const got = await get(`/api/v1/sensors/${s.sensor_id}/readings?from=${encodeURIComponent(since)}&limit=5000`);
        if (got.times.length) bySensor.get(s.sensor_id).add(got.times.map((t) => Date.parse(t)), got.values);
      }),
    );
    if (!alive()) {
      stopAlerts();
      return;
    }
    const stopLive = stream(`/api/v1/workplaces/${id}/live`, (event, data) => {
      if (event === "readings") {
        for (const s of data.sensors) bySensor.get(s.sensor_id)?.add(s.times, s.values);
      } else if (event === "exposure") {
        showExposure(data);
      }
    }, setState);
    return () => {
      stopLive();
      stopAlerts();
      for (const chart of bySensor.values()) chart.plot.destroy();
    };
  }

  async function download(id, shift, format) {
    const blob = await call("GET", `/api/v1/workplaces/${id}/report?date=${shift.date}&shift=${shift.shift}&format=${format}`);
    const link = h("a", { href: URL.createObjectURL(blob), download: `qorgau-workplace-${id}-${shift.date}-shift${shift.shift}.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // ------------------------------------------------------------------ routing

  // Each render has a generation: a view still loading when the route changes must not paint
  // over the newer one (or leave its streams open).
  let generation = 0;

  async function render(message) {
    cleanup();
    cleanup = () => {};
    const mine = ++generation;
    const alive = () => mine === generation;
    const signedIn = Boolean(token());
    document.getElementById("nav").hidden = !signedIn;
    document.getElementById("who").hidden = !signedIn;
    if (!signedIn) return signInView(message);
    try {
      me = me || (await get("/api/v1/me"));
      if (!alive()) return;
      document.getElementById("who-name").textContent = `${me.name} (${me.role.replace("_", " ")})`;
      const [, route, id] = location.hash.match(/^#\/([a-z]*)\/?(\d*)/) || [];
      view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      let stop;
      if (route === "workplace" && id) stop = await workplaceView(Number(id), alive);
      else if (route === "alerts") stop = await alertsView();
      else stop = await mapView(alive);
      if (stop && !alive()) stop();
      else if (stop) cleanup = stop;
    } catch (err) {
      if (err.status === 401 || !alive()) return;
      view.replaceChildren(h("p", { class: "error", role: "alert" }, err.status === 404 ? "Not found, or not visible to this token." : `Could not load: ${err.message}`));
    }
  }

  document.getElementById("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => render());
  render();
})();
