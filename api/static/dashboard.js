// Qorgau's built-in dashboard: plain JavaScript, no framework, no build step.
//
// Views (hash routes): #/ the digital map and the workplaces by level, #/enterprise/ID one
// enterprise, #/workplace/ID the live page and the past shifts of one workplace, #/alerts the
// alert feed. Every number shown comes from the API; the page only formats and draws it.
// Streams are read with fetch() so that the token travels in the Authorization header, never
// in a URL (EventSource cannot send headers).
//
// Every text people read comes from the gettext catalogues of the server (locales/*.po),
// exported as JSON at /i18n/<locale>.json: t(msgid, params) with the English text as msgid. N_() marks a msgid
// used through a table, so that the catalogue test finds it too.
"use strict";
(() => {
  const TOKEN_KEY = "qorgau.token";
  const LOCALE_KEY = "qorgau.locale";
  const CHART_WINDOW_MS = 15 * 60 * 1000;
  const DAY_MS = 86400000;
  const view = document.getElementById("view");
  let me = null;
  let cleanup = () => {};
  const i18n = {
    locale: "en",
    messages: {},
    // CLDR symbols, month names and date patterns of the locale, from the server's Babel.
    formats: { decimal: ".", group: ",", months: [], date: "d MMM y", day_month: "d MMM" },
    index: { locales: [], substances: {}, level_names: {} },
  };

  // ------------------------------------------------------------------ languages

  const N_ = (msgid) => msgid;

  /** The text of msgid in the page's language, its {name} placeholders filled from params. */
  function t(msgid, params) {
    const text = i18n.messages[msgid] || msgid;
    return params ? text.replace(/\{(\w+)\}/g, (all, name) => (name in params ? String(params[name]) : all)) : text;
  }

  /** Like t(), with placeholders filled by nodes (links, code) instead of text. */
  function tn(msgid, nodes) {
    return t(msgid).split(/(\{\w+\})/).map((part) => {
      const name = part.match(/^\{(\w+)\}$/);
      return name && nodes[name[1]] ? nodes[name[1]] : part;
    });
  }

  async function loadCatalogue(locale) {
    const response = await fetch(`/i18n/${locale}.json`);
    if (!response.ok) return false;
    const got = await response.json();
    i18n.messages = got.messages;
    i18n.formats = got.formats;
    i18n.locale = locale;
    document.documentElement.lang = locale;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    const select = document.getElementById("lang");
    select.value = locale;
    select.setAttribute("aria-label", t("Language"));
    document.title = t("Qorgau — workplace exposure");
    return true;
  }

  /** The person's choice (this browser, then their token's), else what the server negotiated
   * from the browser's Accept-Language, else the deployment's default. */
  function wantedLocale() {
    const codes = i18n.index.locales.map((l) => l.code);
    for (const choice of [localStorage.getItem(LOCALE_KEY), me && me.locale]) {
      if (choice && codes.includes(choice)) return choice;
    }
    return i18n.index.locale || i18n.index.default || "kk";
  }

  async function setupLanguages() {
    const response = await fetch("/i18n/index.json");
    i18n.index = await response.json();
    const select = document.getElementById("lang");
    select.replaceChildren(...i18n.index.locales.map((l) => h("option", { value: l.code, lang: l.code }, l.name)));
    select.addEventListener("change", async () => {
      localStorage.setItem(LOCALE_KEY, select.value);
      if (me) {
        me.locale = select.value;
        call("PUT", "/api/v1/me/locale", { locale: select.value }).catch(() => {});
      }
      await loadCatalogue(select.value);
      render();
    });
    await loadCatalogue(wantedLocale());
  }

  // ------------------------------------------------------------------ helpers

  /** Build an element: h("a", {href: "#/"}, "text", child…). Text never becomes markup. */
  function h(tag, attrs, ...children) {
    return build(document.createElement(tag), attrs, children);
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    return build(document.createElementNS(SVG_NS, tag), attrs, children);
  }

  function build(el, attrs, children) {
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

  /** A table of `items` (one row each, cells from `cells(item)`), scrolling sideways inside its
   * box when wider than the screen. */
  function gridTable(id, headings, items, cells, rowAttrs = () => ({})) {
    return h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { class: "grid", id },
        h("thead", {}, h("tr", {}, headings.map((x) => h("th", {}, x)))),
        h("tbody", {}, items.map((item) => h("tr", rowAttrs(item), cells(item)))),
      ),
    );
  }

  /** Replace an element's content, skipping the empty parts (null, false). */
  function fill(el, ...parts) {
    el.replaceChildren(...parts.filter((p) => p !== null && p !== undefined && p !== false));
  }
  const show = (...parts) => fill(view, ...parts);

  /** A number to `digits` significant digits in the page's language (1 234,5 or 1,234.5):
   * the digits from Intl, the separators from the locale's CLDR data. */
  function fmt(value, digits = 3) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    if (value === 0) return "0";
    const magnitude = Math.floor(Math.log10(Math.abs(value)));
    const decimals = Math.min(4, Math.max(0, digits - 1 - magnitude));
    const plain = new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals }).format(value);
    return plain.replace(/[,.]/g, (c) => (c === "," ? i18n.formats.group : i18n.formats.decimal));
  }

  /** A whole number (persons, readings) with the locale's grouping. */
  function count(value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    return new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 }).format(value).replaceAll(",", i18n.formats.group);
  }

  /** Fill a CLDR date pattern ("d MMM y 'г'.", "y 'ж'. dd MMM") with a date's parts. */
  function datePattern(pattern, year, month, day) {
    return pattern.replace(/'([^']*)'|y+|M+|d+/g, (token, quoted) => {
      if (quoted !== undefined) return quoted;
      if (token[0] === "y") return String(year);
      if (token[0] === "d") return token.length > 1 ? String(day).padStart(2, "0") : String(day);
      if (token.length >= 3) return i18n.formats.months[month - 1] || String(month);
      return token.length > 1 ? String(month).padStart(2, "0") : String(month);
    });
  }

  /** Year, month and day of a moment in a time zone. */
  function partsIn(zone, value) {
    const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone || BROWSER_ZONE, year: "numeric", month: "numeric", day: "numeric" }).formatToParts(new Date(value));
    const get = (type) => Number(parts.find((p) => p.type === type).value);
    return [get("year"), get("month"), get("day")];
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const m = Math.round(seconds / 60);
    if (m < 60) return t("{m} min", { m });
    return t("{h} h {m} min", { h: Math.floor(m / 60), m: String(m % 60).padStart(2, "0") });
  }

  // The zone a time is shown in when the page knows no site's zone: the browser's own.
  const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

  /** A time as people read it, always with its zone ("16:27 GMT+5", "3 дек., 16:27 GMT+5"). */
  function timeIn(zone, value, { date = false, seconds = false } = {}) {
    const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone || BROWSER_ZONE, timeZoneName: "short" };
    if (seconds) options.second = "2-digit";
    const time = new Intl.DateTimeFormat("en-GB", options).format(new Date(value));
    return date ? `${dayMonth(zone, value)}, ${time}` : time;
  }

  /** Day and month of a moment in a zone ("3 дек.", "Dec 3"). */
  function dayMonth(zone, value) {
    const [year, month, day] = partsIn(zone, value);
    return datePattern(i18n.formats.day_month, year, month, day);
  }

  /** A calendar date (an ISO date, no time) in the page's language ("3 дек. 2026 г."). */
  function dayText(isoDate) {
    const [year, month, day] = isoDate.split("-").map(Number);
    return datePattern(i18n.formats.date, year, month, day);
  }

  /** Tick labels of a time axis: precise enough that neighbours differ (seconds when ticks
   * are under a minute apart, the date when the axis spans days), always with the zone. */
  function timeTicks(zone) {
    return (u, splits) => {
      const step = splits.length > 1 ? splits[1] - splits[0] : 0;
      const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
      if (step >= DAY_MS) return splits.map((v) => dayMonth(zone, v));
      return splits.map((v) => timeIn(zone, v, { date: span >= DAY_MS, seconds: step > 0 && step < 60000 }));
    };
  }

  // Unit codes as stored → as typeset; the catalogues translate the symbols (мг/м³, м/с², дБА).
  const UNIT_SYMBOLS = { "mg/m3": N_("mg/m³"), "m/s2": N_("m/s²"), "dB(A)": N_("dB(A)"), "dB(C)": N_("dB(C)"), ppm: N_("ppm"), "%LEL": N_("% LEL"), "%vol": N_("% vol") };
  const unit = (code) => (code ? t(UNIT_SYMBOLS[code] || code) : "");
  const withUnit = (value, code, digits) => (value === null || value === undefined ? "—" : `${fmt(value, digits)}\u00a0${unit(code)}`);

  const QUANTITY_NAMES = {
    noise_laeq: N_("Noise LAeq"),
    noise_lamax: N_("Noise LAmax"),
    noise_lcpeak: N_("Peak sound level LCpeak"),
    vib_hav: N_("Hand-arm vibration"),
    vib_wbv_x: N_("Whole-body vibration, X axis"),
    vib_wbv_y: N_("Whole-body vibration, Y axis"),
    vib_wbv_z: N_("Whole-body vibration, Z axis"),
    gas: N_("Gas"),
    dust: N_("Dust"),
  };

  function substanceName(code) {
    const name = i18n.index.substances[code];
    return name ? t(name) : code;
  }

  /** "Noise LAeq", "Gas: carbon monoxide", "Crystalline silica dust, SiO₂ 10-70 %": never a
   * raw code (a dust's name says it is dust). */
  function quantityLabel(x) {
    const name = t(QUANTITY_NAMES[x.quantity] || x.quantity);
    if (!x.substance) return name;
    const substance = substanceName(x.substance);
    if (x.quantity === "dust") return substance.charAt(0).toLocaleUpperCase(i18n.locale) + substance.slice(1);
    return t("{quantity}: {substance}", { quantity: name, substance });
  }

  const FACTORS = {
    noise: N_("noise"),
    vibration_hand_arm: N_("hand-arm vibration"),
    vibration_whole_body: N_("whole-body vibration"),
    chemical: N_("chemical factor"),
    dust: N_("fibrogenic dust"),
    microclimate: N_("microclimate"),
    lighting: N_("lighting"),
    biological: N_("biological factor"),
    heaviness: N_("heaviness of work"),
    intensity: N_("intensity of work"),
    ionizing_radiation: N_("ionizing radiation"),
    non_ionizing_radiation: N_("non-ionizing radiation"),
    infrasound: N_("infrasound"),
    ultrasound: N_("ultrasound"),
  };

  /** A factor of the class combination: "noise", "chemical:CO" → its display name. */
  function factorName(code) {
    const [kind, substance] = String(code).split(":");
    const name = kind in FACTORS ? t(FACTORS[kind]) : kind.replaceAll("_", " ");
    return substance ? t("{quantity}: {substance}", { quantity: name, substance: substanceName(substance) }) : name;
  }

  function levelName(level) {
    const names = i18n.index.level_names[i18n.locale] || i18n.index.level_names.en || [];
    return names[level - 1] || String(level);
  }

  const SEVERITIES = { info: N_("info"), warning: N_("warning"), high: N_("high"), critical: N_("critical") };
  const STATES = { open: N_("open"), acknowledged: N_("acknowledged"), resolved: N_("resolved") };
  const KINDS = {
    ceiling: N_("ceiling exceeded"),
    short_term: N_("15-min limit exceeded"),
    pre_exceedance: N_("approaching a limit"),
    floor: N_("below the floor"),
    pre_floor: N_("approaching the floor"),
    projected_exposure: N_("projected shift exposure over the limit"),
    trend: N_("rising trend"),
    flatline: N_("sensor stuck on one value"),
    out_of_range: N_("value out of range"),
    sensor_silent: N_("sensor silent"),
    sequence_gap: N_("messages missing"),
    device_offline: N_("device offline"),
    calibration_overdue: N_("calibration overdue"),
  };
  const ROLES = { admin: N_("administrator"), safety_officer: N_("safety officer"), inspector: N_("inspector"), scoring: N_("risk scoring service") };
  const SHIFT_STATUS = { running: N_("running"), provisional: N_("provisional"), final: N_("final") };
  const named = (table, code) => (code in table ? t(table[code]) : String(code).replaceAll("_", " "));

  function badge(kind, value, title, text) {
    const code = value === null || value === undefined ? "—" : String(value);
    return h("span", { class: `badge ${kind}-${code.replace(".", "_")}`, title }, text || code);
  }

  /** A result from too little data always says so: never a bare class. */
  function provisional(notEnough, title) {
    return notEnough
      ? h("span", { class: "badge provisional", title: title || t("coverage below the norms' minimum: the class and В are not a finding") }, t("provisional: not enough data"))
      : null;
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

  async function call(method, path, body, { signOutOn401 = true } = {}) {
    const headers = { Authorization: `Bearer ${token()}`, "Accept-Language": i18n.locale };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && signOutOn401) {
      signOut(t("Your token was refused (unknown, revoked or expired). Sign in again."));
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
            signOut(t("Your token was refused (unknown, revoked or expired). Sign in again."));
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

  const LIVE_STATES = { connecting: N_("connecting"), live: N_("live"), reconnecting: N_("reconnecting") };

  function liveDot() {
    const dot = h("span", { class: "live-dot", dataset: { state: "connecting" } }, t(LIVE_STATES.connecting));
    const set = (state) => {
      dot.dataset.state = state;
      dot.textContent = t(LIVE_STATES[state]);
    };
    return [dot, set];
  }

  // ------------------------------------------------------------------ sign-in

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    zones = null;
    // Replacing the URL (not assigning location.hash) fires no hashchange, whose render would
    // wipe the message off the sign-in form.
    if (location.hash && location.hash !== "#/") history.replaceState(null, "", "#/");
    render(message);
  }

  function signInView(message) {
    const input = h("input", {
      id: "token",
      type: "password",
      autocomplete: "off",
      placeholder: "qg_…",
      required: true,
      "aria-label": t("API token"),
    });
    const error = h("p", { class: "error", role: "alert", id: "sign-in-error" }, message || "");
    const form = h(
      "form",
      { class: "card sign-in", id: "sign-in" },
      h("h1", {}, t("Sign in")),
      h("p", {}, t("Paste your Qorgau API token. It stays in this browser tab only (session storage) and is sent to this server alone.")),
      h("label", { for: "token" }, t("API token")),
      input,
      h("button", { type: "submit" }, t("Sign in")),
      error,
      h(
        "p",
        { class: "hint" },
        tn("No token? An administrator creates one on the server, for example {officer} or {inspector}. {demo} prints ready-made tokens.", {
          officer: h("code", {}, "qorgau tokens create --role safety_officer --enterprise CODE"),
          inspector: h("code", {}, "qorgau tokens create --role inspector --region Karaganda"),
          demo: h("code", {}, "qorgau demo"),
        }),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      try {
        me = await call("GET", "/api/v1/me", undefined, { signOutOn401: false });
        render();
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        error.textContent = err.status === 401 ? t("That token was refused.") : t("Could not sign in: {reason}", { reason: err.message });
      }
    });
    view.replaceChildren(form);
    input.focus();
  }

  // ------------------------------------------------------------------ the digital map

  let outlines = null;
  async function regionOutlines() {
    if (!outlines) {
      const response = await fetch("/static/map/kz-regions.json");
      outlines = await response.json();
    }
    return outlines;
  }

  /** The outline an enterprise's free-text region names (any of en/ru/kk spellings), or null. */
  function regionOf(text, regions) {
    if (!text) return null;
    const key = text.toLowerCase().replace(/\b(region|oblast|city)\b|област[ьи]|облысы|қаласы|^г\.\s*/g, "").replace(/\s+/g, " ").trim();
    const full = text.toLowerCase().trim();
    return regions.find((r) => r.aliases.includes(full)) || regions.find((r) => r.aliases.includes(key)) || regions.find((r) => r.aliases.some((a) => key.startsWith(a))) || null;
  }

  // Web Mercator at zoom 5 (1 unit = 1 pixel of a 256-px tile there), so that optional tiles
  // line up: Kazakhstan (46–88° E, 40.5–55.5° N) is about 940 × 530 units.
  const TILE_ZOOM = 5;
  const WORLD = 256 * 2 ** TILE_ZOOM;
  const mercX = (lon) => ((lon + 180) / 360) * WORLD;
  const mercY = (lat) => {
    const sin = Math.sin((lat * Math.PI) / 180);
    return (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI)) * WORLD;
  };
  const MAP = { x0: mercX(46.3), y0: mercY(55.7), x1: mercX(87.6), y1: mercY(40.4) };
  const project = (lon, lat) => [mercX(lon) - MAP.x0, mercY(lat) - MAP.y0];

  /** Background tiles covering the map, when the server names a tile URL template. */
  function tiles(template) {
    const images = [];
    for (let x = Math.floor(MAP.x0 / 256); x * 256 < MAP.x1; x++) {
      for (let y = Math.floor(MAP.y0 / 256); y * 256 < MAP.y1; y++) {
        const href = template.replace("{z}", TILE_ZOOM).replace("{x}", x).replace("{y}", y);
        images.push(s("image", { href, class: "tile", x: x * 256 - MAP.x0, y: y * 256 - MAP.y0, width: 256, height: 256 }));
      }
    }
    return images;
  }

  function regionPath(rings) {
    return rings.map((ring) => "M" + ring.map(([lon, lat]) => project(lon, lat).map((v) => v.toFixed(1)).join(",")).join("L") + "Z").join("");
  }

  function mapSvg(regions, enterprises, onRegion) {
    const worst = new Map();
    for (const e of enterprises) {
      if (e.level && e.region_id) worst.set(e.region_id, Math.max(worst.get(e.region_id) || 0, e.level));
    }
    const tileUrl = (i18n.index.map || {}).tiles;
    const svg = s(
      "svg",
      { viewBox: `0 0 ${(MAP.x1 - MAP.x0).toFixed(0)} ${(MAP.y1 - MAP.y0).toFixed(0)}`, class: `kz-map${tileUrl ? " with-tiles" : ""}`, role: "img", "aria-label": t("Map of Kazakhstan's regions") },
      tileUrl ? tiles(tileUrl) : [],
    );
    for (const r of regions) {
      const level = worst.get(r.id);
      svg.append(
        s("path", { d: regionPath(r.rings), class: `region ${level ? `level-${level}` : "no-data"}`, dataset: { region: r.id }, onclick: () => onRegion(r.id) }, s("title", {}, level ? `${t(r.name)} — ${t("highest level {level}: {name}", { level, name: levelName(level) })}` : t(r.name))),
      );
    }
    for (const e of enterprises) {
      if (e.latitude === null || e.latitude === undefined) continue;
      const [x, y] = project(e.longitude, e.latitude);
      svg.append(
        s(
          "a",
          { href: `#/enterprise/${e.enterprise_id}`, class: "point", dataset: { enterpriseId: e.enterprise_id } },
          s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 11, class: `level-${e.level || "none"}` }),
          s("title", {}, `${e.name} — ${e.level ? `${t("level {level}", { level: e.level })}: ${levelName(e.level)}` : t("not scored")}`),
        ),
      );
    }
    return svg;
  }

  function legend() {
    const attribution = (i18n.index.map || {}).attribution;
    return h(
      "ul",
      { class: "legend" },
      [1, 2, 3, 4, 5].map((level) => h("li", {}, h("span", { class: `swatch level-${level}` }), `${level} — ${levelName(level)}`)),
      h("li", {}, h("span", { class: "swatch no-data" }), t("no scored enterprise")),
      attribution ? h("li", { class: "muted attribution" }, attribution) : null,
    );
  }

  const filters = { region: "", level: "", industry: "" };

  async function mapView(alive) {
    const [map, workplaces, shapes] = await Promise.all([
      get("/api/v1/map"),
      get("/api/v1/export/workplaces?format=json").catch(() => ({ rows: [] })),
      regionOutlines(),
    ]);
    const regions = shapes.regions;
    const enterprises = map.enterprises.map((e) => ({ ...e, region_id: (regionOf(e.region, regions) || {}).id || null }));
    const industries = [...new Set(enterprises.map((e) => e.activity_code).filter(Boolean))].sort();
    const idOf = await workplaceIds();
    if (!alive()) return;

    const mapBox = h("div", { class: "map-box", id: "map" });
    const list = h("div", { id: "map-list" });
    const select = (name, options) =>
      h(
        "select",
        { id: `filter-${name}`, onchange: (event) => { filters[name] = event.target.value; redraw(); } },
        options.map(([value, text]) => h("option", { value, selected: filters[name] === value }, text)),
      );
    const controls = h(
      "div",
      { class: "filters" },
      h("label", {}, t("Region"), select("region", [["", t("all regions")], ...regions.map((r) => [r.id, t(r.name)]).sort((a, b) => a[1].localeCompare(b[1], i18n.locale))])),
      h("label", {}, t("Risk level"), select("level", [["", t("all levels")], ...[1, 2, 3, 4, 5].map((l) => [String(l), `${l} — ${levelName(l)}`]), ["none", t("not scored")]])),
      h("label", {}, t("Industry (ОКЭД)"), select("industry", [["", t("all industries")], ...industries.map((c) => [c, c])])),
    );
    const passes = (e) =>
      (!filters.region || e.region_id === filters.region) &&
      (!filters.level || (filters.level === "none" ? e.level === null : String(e.level) === filters.level)) &&
      (!filters.industry || e.activity_code === filters.industry);
    function redraw() {
      const shown = enterprises.filter(passes);
      const placed = shown.filter((e) => e.latitude !== null && e.latitude !== undefined);
      const unplaced = shown.filter((e) => !placed.includes(e));
      fill(
        mapBox,
        mapSvg(regions, shown, (id) => {
          filters.region = filters.region === id ? "" : id;
          document.getElementById("filter-region").value = filters.region;
          redraw();
        }),
        legend(),
      );
      fill(
        list,
        h("p", { class: "muted", id: "map-count" }, t("{shown} of {all} enterprises shown; {placed} on the map.", { shown: shown.length, all: enterprises.length, placed: placed.length })),
        unplaced.length ? h("p", { class: "muted" }, t("Without coordinates (not on the map): {names}.", { names: unplaced.map((e) => e.name).join(", ") })) : null,
        gridTable("enterprises", [t("Enterprise"), t("Region"), t("Industry (ОКЭД)"), t("ПР (mean)"), t("Level"), t("Persons")], shown, (e) => [
          h("td", {}, h("a", { href: `#/enterprise/${e.enterprise_id}` }, e.name)),
          h("td", {}, e.region_id ? t(regions.find((r) => r.id === e.region_id).name) : e.region || "—"),
          h("td", {}, e.activity_code || "—"),
          h("td", { class: "num" }, fmt(e.mean_pr)),
          h("td", {}, e.level ? badge("level", e.level, levelName(e.level)) : h("span", { class: "muted" }, t("not scored")), provisional(e.not_enough_data, t("not enough data at: {workplaces}", { workplaces: (e.workplaces_not_enough_data || []).join(", ") }))),
          h("td", { class: "num" }, count(e.headcount_scored)),
        ]),
      );
    }
    redraw();

    const nameOf = new Map(map.enterprises.map((e) => [e.enterprise, e.name]));
    const rows = [...workplaces.rows].sort((a, b) => (b.level || 0) - (a.level || 0) || (b.pr || 0) - (a.pr || 0));
    const table = gridTable("workplaces", [t("Enterprise"), t("Workplace"), t("Profession"), t("Persons"), t("Class"), t("В (1–5)"), t("ПР"), t("Level"), ""], rows, (r) => {
      const id = idOf.get(`${r.enterprise_code}/${r.workplace_code}`);
      return [
        h("td", {}, nameOf.get(r.enterprise_code) || r.enterprise_code),
        h("td", {}, id ? h("a", { href: `#/workplace/${id}` }, r.workplace_name) : r.workplace_name),
        h("td", {}, r.profession || "—"),
        h("td", { class: "num" }, r.headcount ?? "—"),
        h("td", {}, badge("class", r.b_class), provisional(r.b_not_enough_data)),
        h("td", { class: "num" }, r.b ?? "—"),
        h("td", { class: "num" }, fmt(r.pr)),
        h("td", {}, r.level ? badge("level", r.level, levelName(r.level)) : h("span", { class: "muted" }, r.unscored_reason || t("not scored"))),
        h("td", {}, id ? h("a", { href: `#/workplace/${id}`, class: "button small" }, t("Open")) : null),
      ];
    });
    show(
      h("h1", {}, t("Digital map of enterprises")),
      h("p", { class: "muted" }, t("Period {from} – {to}: enterprises by integral occupational risk (headcount-weighted mean ПР of their workplaces); a region takes the colour of the highest level among its enterprises", { from: dayText(map.period_from), to: dayText(map.period_to) })),
      controls,
      mapBox,
      h("p", { class: "muted small" }, t("Region outlines: Natural Earth admin-1 (public domain), boundaries before 2018/2022 and simplified; see the map's source note.")),
      list,
      h("h2", {}, t("Workplaces by risk level")),
      rows.length ? table : h("p", { class: "muted" }, t("No workplaces visible to this token.")),
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

  // ------------------------------------------------------------------ one enterprise

  async function enterpriseView(id, alive) {
    const [risk, workplaces] = await Promise.all([get(`/api/v1/enterprises/${id}/risk`), get(`/api/v1/enterprises/${id}/workplaces?limit=1000`)]);
    if (!alive()) return;
    show(
      h("p", {}, h("a", { href: "#/" }, `← ${t("Digital map of enterprises")}`)),
      h("h1", { id: "enterprise-name" }, risk.name),
      h(
        "section",
        { class: "card summary" },
        h(
          "div",
          { class: "facts" },
          h("div", {}, h("small", {}, t("Region")), h("b", {}, risk.region || "—")),
          h("div", {}, h("small", {}, t("Industry (ОКЭД)")), h("b", {}, risk.activity_code || "—")),
          h("div", {}, h("small", {}, t("ПР (mean)")), h("b", {}, fmt(risk.mean_pr))),
          h("div", {}, h("small", {}, t("Level")), risk.level ? badge("level", risk.level, null, `${risk.level} — ${levelName(risk.level)}`) : h("b", {}, t("not scored"))),
          h("div", {}, h("small", {}, t("Period")), h("b", {}, `${dayText(risk.period_from)} … ${dayText(risk.period_to)}`)),
        ),
      ),
      h("h2", {}, t("Workplaces")),
      h("ul", { class: "plain" }, workplaces.items.map((w) => h("li", {}, h("a", { href: `#/workplace/${w.id}` }, w.name), w.profession ? h("span", { class: "muted" }, ` · ${w.profession}`) : null))),
      me.role === "admin" || me.role === "safety_officer" ? notificationsSection(risk.enterprise, workplaces.items) : null,
    );
  }

  // ------------------------------------------------------------------ notifications

  /** Who is told of the enterprise's alerts and how: its recipients, routes and escalation
   * policy (admins and safety officers; the API decides what the token may see). */
  function notificationsSection(code, workplaces) {
    const out = h("div", {}, h("p", { class: "muted" }, t("Loading…")));
    const load = async () => {
      try {
        fill(out, ...(await notificationsBody(code, workplaces, load)));
      } catch (err) {
        fill(out, h("p", { class: "error", role: "alert" }, t("Could not load: {reason}", { reason: err.message })));
      }
    };
    load();
    return h("section", { id: "notifications" }, h("h2", {}, t("Notifications"), h("small", {}, t("who is told of this enterprise's alerts, and how"))), out);
  }

  const minutes = (x) => (Number.isInteger(x) ? count(x) : fmt(x));

  function policyText(p) {
    const parts = [t("If nobody acknowledges an alert within {minutes} min, the next level is told.", { minutes: minutes(p.escalate_after_min) })];
    if (p.reminder_every_min) parts.push(t("After the last level, a reminder every {minutes} min, at most {count} times.", { minutes: minutes(p.reminder_every_min), count: p.max_reminders }));
    if (p.notify_on_resolve) parts.push(t("Everyone told is told when the alert is resolved."));
    return parts.join(" ");
  }

  async function notificationsBody(code, workplaces, reload) {
    const [recipients, routes, policies] = await Promise.all([get("/api/v1/notifications/recipients"), get("/api/v1/notifications/routes"), get("/api/v1/notifications/policies")]);
    const policy = policies.find((p) => p.enterprise === code);
    const people = recipients.filter((r) => r.enterprise === code);
    const nameOf = new Map(people.map((r) => [r.id, r.name]));
    const placeOf = new Map(workplaces.map((w) => [w.code, w.name]));
    const languageName = (c) => (i18n.index.locales.find((l) => l.code === c) || {}).name || c;
    const where = (r) => (r.workplace ? `${t("workplace")} ${placeOf.get(r.workplace) || r.workplace}` : r.site ? `${t("site")} ${r.site}` : t("the whole enterprise"));
    return [
      h("p", { id: "escalation-policy" }, policy ? policyText(policy) : t("No escalation policy: nobody else is told when an alert is not acknowledged.")),
      h("h3", {}, t("Recipients")),
      people.length
        ? gridTable("recipients", [t("Name"), t("Language"), t("Channels"), t("On call")], people, (r) => [
            h("td", {}, r.name, r.active ? null : h("small", { class: "muted" }, ` (${t("inactive")})`)),
            h("td", {}, languageName(r.language)),
            h("td", {}, r.channels.map((c) => h("div", {}, `${named(CHANNELS, c.channel)}: `, h("code", {}, c.address)))),
            h("td", {}, r.on_call ? `${r.on_call.start.slice(0, 5)}–${r.on_call.end.slice(0, 5)}` : t("always")),
          ], (r) => ({ dataset: { recipientId: r.id } }))
        : h("p", { class: "muted" }, t("No recipients yet.")),
      recipientForm(code, reload),
      h("h3", {}, t("Routes")),
      routes.some((r) => r.enterprise === code)
        ? gridTable("routes", [t("Escalation level"), t("Recipient"), t("Severity"), t("Kinds"), t("Where")], routes.filter((r) => r.enterprise === code), (r) => [
            h("td", {}, r.level === 0 ? t("when raised") : t("escalation {n}", { n: r.level })),
            h("td", {}, nameOf.get(r.recipient_id) || `#${r.recipient_id}`),
            h("td", {}, t("{severity} and above", { severity: named(SEVERITIES, r.min_severity) })),
            h("td", {}, r.kinds ? r.kinds.map((k) => named(KINDS, k)).join(", ") : t("every kind")),
            h("td", {}, where(r)),
          ])
        : h("p", { class: "muted" }, t("No routes yet: nobody is told of this enterprise's alerts.")),
    ];
  }

  /** A person with one channel; more channels, routes and the policy through the API. */
  function recipientForm(code, reload) {
    const name = h("input", { name: "name", required: true, maxlength: 200 });
    const language = h("select", { name: "language" }, i18n.index.locales.map((l) => h("option", { value: l.code, selected: l.code === i18n.locale }, l.name)));
    const channel = h("select", { name: "channel" }, Object.entries(CHANNELS).map(([value, text]) => h("option", { value }, t(text))));
    const address = h("input", { name: "address", required: true, maxlength: 2000 });
    const error = h("p", { class: "error", role: "alert" });
    const form = h(
      "form",
      { class: "filters", id: "recipient-form" },
      h("label", {}, t("Name"), name),
      h("label", {}, t("Language"), language),
      h("label", {}, t("Channel"), channel),
      h("label", {}, t("Address"), address),
      h("button", { type: "submit", class: "small" }, t("Add recipient")),
      error,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { enterprise: code, name: name.value.trim(), language: language.value, channels: [{ channel: channel.value, address: address.value.trim() }] };
      try {
        await call("POST", "/api/v1/notifications/recipients", body);
        await reload();
      } catch (err) {
        error.textContent = t("Could not add: {reason}", { reason: err.message });
      }
    });
    return form;
  }

  // ------------------------------------------------------------------ alerts

  const SEVERITY_RANK = { info: 0, warning: 1, high: 2, critical: 3 };

  /** Each enterprise's time zone by its code, from the registry the token may read. */
  let zones = null;
  function enterpriseZones() {
    zones =
      zones ||
      get("/api/v1/enterprises?limit=1000").then(
        (page) => new Map(page.items.map((e) => [e.code, e.timezone])),
        () => {
          zones = null;
          return new Map();
        },
      );
    return zones;
  }

  const TIMELINE_EVENTS = {
    opened: N_("raised"),
    updated: N_("updated"),
    escalated: N_("escalated"),
    acknowledged: N_("acknowledged"),
    resolved: N_("resolved"),
    notified: N_("notified"),
    escalated_to: N_("notified of the escalation"),
    reminded: N_("reminded"),
    told_resolved: N_("told it is resolved"),
    queued: N_("queued"),
  };
  const RESULTS = { sent: N_("sent"), retry: N_("failed, will retry"), failed: N_("failed"), pending: N_("waiting to be sent") };
  const CHANNELS = { email: N_("email"), telegram: N_("Telegram"), sms: N_("SMS"), webhook: N_("webhook") };

  /** The alert's story from the timeline API (raised, notified whom through which channel and
   * with what result, escalated, acknowledged, resolved), times in the enterprise's zone. */
  async function timelinePanel(a) {
    const [story, zoneOf] = await Promise.all([get(`/api/v1/alerts/${a.alert_id}/timeline`), enterpriseZones()]);
    const zone = zoneOf.get(story.enterprise);
    return [
      gridTable(null, [t("Time"), t("Event"), t("Who"), t("Channel"), t("Result"), t("Details")], story.entries, (x) => [
        h("td", {}, h("time", { datetime: x.at }, timeIn(zone, x.at, { date: true, seconds: true }))),
        h("td", {}, named(TIMELINE_EVENTS, x.event), x.severity && !x.channel ? h("small", { class: "muted" }, ` · ${named(SEVERITIES, x.severity)}`) : null),
        h("td", { class: "actor" }, x.who || "—"),
        h("td", {}, x.channel ? [named(CHANNELS, x.channel), h("br"), h("small", { class: "muted" }, x.address)] : "—"),
        h("td", {}, x.result ? named(RESULTS, x.result) : "—"),
        h("td", { class: "detail" }, x.detail || ""),
      ], (x) => ({ dataset: { event: x.event } })),
      h(
        "p",
        { class: "timeline-foot" },
        h("button", { type: "button", class: "small secondary", dataset: { action: "timeline-csv" }, onclick: () => save(`/api/v1/alerts/${a.alert_id}/timeline?format=csv`, `qorgau-alert-${a.alert_id}.csv`) }, t("Download CSV")),
        h("small", { class: "muted" }, t("times in {zone}", { zone: zone || BROWSER_ZONE })),
      ),
    ];
  }

  function alertRow(a, timezone, { timeline = false } = {}) {
    const canAct = me.role === "admin" || me.role === "safety_officer";
    const story = h("div", { class: "timeline", hidden: true });
    const toggle = async () => {
      const li = story.closest("li");
      if (!story.hidden) {
        story.hidden = true;
        li.dataset.timeline = "";
        return;
      }
      story.hidden = false;
      li.dataset.timeline = "open";
      fill(story, h("p", { class: "muted" }, t("Loading…")));
      try {
        fill(story, ...(await timelinePanel(a)));
      } catch (err) {
        fill(story, h("p", { class: "error", role: "alert" }, t("Could not load: {reason}", { reason: err.message })));
      }
    };
    const act = (action) => async (event) => {
      const body = { by: me.name };
      if (action === "acknowledge" && SEVERITY_RANK[a.severity] >= SEVERITY_RANK.high) {
        // The API requires the action taken for high and critical alerts.
        const taken = (window.prompt(t("Action taken (required for high and critical alerts)")) || "").trim();
        if (!taken) return;
        body.action = taken;
      }
      event.target.disabled = true;
      try {
        const updated = await call("POST", `/api/v1/alerts/${a.alert_id}/${action}`, body);
        const li = event.target.closest("li");
        li.replaceWith(alertRow(updated, timezone, { timeline: li.dataset.timeline === "open" }));
      } catch (err) {
        event.target.disabled = false;
        event.target.title = err.message;
      }
    };
    const row = h(
      "li",
      { class: `alert severity-${a.severity}`, dataset: { alertId: a.alert_id, state: a.state } },
      h("div", { class: "alert-head" }, badge("severity", a.severity, null, named(SEVERITIES, a.severity)), h("span", { class: "state" }, named(STATES, a.state)), h("span", { class: "kind" }, named(KINDS, a.kind)), h("time", { datetime: a.opened_at }, timeIn(timezone, a.opened_at, { date: true }))),
      h("p", {}, a.message),
      h(
        "div",
        { class: "alert-foot" },
        h("span", { class: "muted" }, [a.enterprise, a.workplace, a.sensor].filter(Boolean).join(" · ")),
        a.acknowledged_by ? h("span", { class: "muted" }, t("acknowledged by {name}", { name: a.acknowledged_by })) : null,
        canAct && a.state === "open" ? h("button", { type: "button", class: "small", dataset: { action: "acknowledge" }, onclick: act("acknowledge") }, t("Acknowledge")) : null,
        canAct && a.state !== "resolved" ? h("button", { type: "button", class: "small secondary", dataset: { action: "resolve" }, onclick: act("resolve") }, t("Resolve")) : null,
        h("button", { type: "button", class: "small secondary", dataset: { action: "timeline" }, onclick: toggle }, t("Timeline")),
      ),
      story,
    );
    if (timeline) toggle();
    return row;
  }

  /** A live list of alerts: the active ones from the API, then every transition streamed. */
  function alertFeed(filter, timezone) {
    const list = h("ul", { class: "alerts", id: "alert-feed" });
    const [dot, setState] = liveDot();
    const shown = new Map();
    const place = (a) => {
      if (!filter(a)) return;
      const old = shown.get(a.alert_id);
      // An update keeps the alert's timeline open (and shows it afresh).
      const row = alertRow(a, timezone, { timeline: Boolean(old) && old.dataset.timeline === "open" });
      if (old) old.replaceWith(row);
      else list.prepend(row);
      shown.set(a.alert_id, row);
      empty.hidden = shown.size > 0;
    };
    const empty = h("p", { class: "muted" }, t("No active alerts."));
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
    return [h("div", { class: "feed" }, h("div", { class: "feed-head" }, h("h2", {}, t("Alerts")), dot), list, empty), stop];
  }

  async function alertsView() {
    const [feed, stop] = alertFeed(() => true, undefined);
    view.replaceChildren(h("h1", {}, t("Alerts")), h("p", { class: "muted" }, t("Open and acknowledged alerts of the enterprises this token sees, updated as they happen. Times in {zone}.", { zone: BROWSER_ZONE })), feed);
    return stop;
  }

  // ------------------------------------------------------------------ the workplace page

  const RUNNING_METRICS = { "LEX,8h": N_("LEX,8h"), "A(8)": N_("A(8)"), TWA: N_("TWA") };

  function gauge(r) {
    const top = Math.max(r.limit || 0, r.projected || 0, r.so_far || 0) * 1.15 || 1;
    const pct = (v) => `${Math.max(0, Math.min(100, (100 * (v || 0)) / top))}%`;
    const over = r.projected !== null && r.limit !== null && r.projected >= r.limit;
    return h(
      "div",
      { class: "gauge", role: "img", "aria-label": t("{metric} so far {so_far}, projected {projected}, limit {limit}", { metric: r.metric, so_far: withUnit(r.so_far, r.unit), projected: withUnit(r.projected, r.unit), limit: withUnit(r.limit, r.unit) }) },
      h("div", { class: `projected${over ? " over" : ""}`, dataset: { width: pct(r.projected) } }),
      h("div", { class: "so-far", dataset: { width: pct(r.so_far) } }),
      r.action_level !== null ? h("div", { class: "mark action", dataset: { left: pct(r.action_level) }, title: t("action level {value}", { value: withUnit(r.action_level, r.unit) }) }) : null,
      r.limit !== null ? h("div", { class: "mark limit", dataset: { left: pct(r.limit) }, title: t("limit {value}", { value: withUnit(r.limit, r.unit) }) }) : null,
    );
  }

  /** Widths and positions are set through the CSSOM (the page's policy forbids inline style). */
  function applyGeometry(root) {
    for (const el of root.querySelectorAll("[data-width]")) el.style.width = el.dataset.width;
    for (const el of root.querySelectorAll("[data-left]")) el.style.left = el.dataset.left;
  }

  function exposureCard(x) {
    const r = x.running;
    const metric = r ? t(RUNNING_METRICS[r.metric] || r.metric) : "";
    const body = r
      ? [
          h("div", { class: "figures" },
            h("div", {}, h("small", {}, t("{metric} so far", { metric })), h("b", { class: "so-far-value" }, withUnit(r.so_far, r.unit))),
            h("div", {}, h("small", {}, t("projected end of shift")), h("b", { class: r.limit !== null && r.projected >= r.limit ? "over" : "" }, withUnit(r.projected, r.unit))),
            h("div", {}, h("small", {}, t("limit")), h("b", {}, withUnit(r.limit, r.unit))),
          ),
          gauge(r),
          h("p", { class: "muted" },
            r.time_to_limit_s === null ? t("Limit not reached this shift at the current rate.") : r.time_to_limit_s === 0 ? t("Limit already reached.") : t("Limit reached in {time} at the current rate (mean of the last {window}).", { time: duration(r.time_to_limit_s), window: duration(r.rate_window_s) })),
        ]
      : [h("p", { class: "muted" }, x.note || t("No daily value for this quantity; its chart shows the readings."))];
    return h(
      "article",
      { class: "card exposure", dataset: { sensorId: x.sensor_id } },
      h("header", {}, h("h3", {}, quantityLabel(x)), badge("class", x.working_class, t("class if the shift goes on as so far"))),
      h("p", { class: "muted sensor-code" }, t("sensor {code} · {count} readings this shift", { code: x.sensor, count: count(x.samples) })),
      body,
    );
  }

  const LINE_NAMES = {
    action: N_("action level {value}"),
    limit: N_("limit {value}"),
    short_term: N_("maximum single ПДК {value}"),
    ceiling: N_("ceiling {value}"),
    floor: N_("alarm threshold {value}"),
  };

  /** A limit line's legend in the page's language; its unit is the last word of the API's
   * label (a LCpeak ceiling is in dB(C) on a dB(A) chart). */
  function lineLabel(line, sensorUnit) {
    const last = line.label.trim().split(/\s+/).pop();
    const code = last in UNIT_SYMBOLS ? last : sensorUnit;
    return t(LINE_NAMES[line.kind] || "limit {value}", { value: withUnit(line.value, code) });
  }

  /** Tick labels of a value axis: as many decimals as the tick step needs, locale separators. */
  function valueTicks(u, splits) {
    // The fewest decimals that show every tick exactly (2.5-steps need one, 0.25-steps two).
    let decimals = 0;
    while (decimals < 4 && splits.some((v) => Math.abs(v * 10 ** decimals - Math.round(v * 10 ** decimals)) > 1e-6 * 10 ** decimals)) decimals += 1;
    return splits.map((v) => new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals, useGrouping: false }).format(v).replace(".", i18n.formats.decimal));
  }

  const LINE_COLOURS = { action: "#ef6c00", limit: "#c62828", short_term: "#6a1b9a", ceiling: "#7f0000", floor: "#283593" };

  class SensorChart {
    constructor(sensor, timezone, width) {
      this.sensor = sensor;
      this.xs = [];
      this.ys = [];
      this.lines = sensor.lines;
      const label = `${quantityLabel(sensor)}, ${unit(sensor.unit)}`;
      this.el = h("figure", { class: "card chart", dataset: { sensorId: sensor.sensor_id, points: 0 } }, h("figcaption", {}, h("b", {}, label), h("span", { class: "latest" }, "—")));
      const series = [
        {},
        { label, stroke: "#1565c0", width: 1.5, fill: "rgba(21,101,192,0.08)", points: { show: false } },
        ...this.lines.map((line) => ({ label: lineLabel(line, sensor.unit), stroke: LINE_COLOURS[line.kind], width: 1.5, dash: [6, 4], points: { show: false } })),
      ];
      this.plot = new uPlot(
        {
          width,
          height: 220,
          ms: 1,
          tzDate: (ts) => uPlot.tzDate(new Date(ts), timezone),
          series,
          scales: { x: { time: true }, y: { range: (u, min, max) => this.range(min, max) } },
          axes: [{ stroke: "#555", grid: { stroke: "#eee" }, space: 70, values: timeTicks(timezone) }, { stroke: "#555", grid: { stroke: "#eee" }, label: unit(sensor.unit), labelSize: 18, size: 56, values: valueTicks }],
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
        const at = times[i];
        const last = this.xs.length ? this.xs[this.xs.length - 1] : -Infinity;
        if (at > last) {
          this.xs.push(at);
          this.ys.push(values[i]);
        } else if (at < last) {
          // Out of order (a replayed backlog): keep the arrays sorted for the plot.
          const k = this.xs.findIndex((x) => x >= at);
          if (this.xs[k] !== at) {
            this.xs.splice(k, 0, at);
            this.ys.splice(k, 0, values[i]);
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
      this.el.querySelector(".latest").textContent = t("latest {value}", { value: withUnit(this.ys[this.ys.length - 1], this.sensor.unit) });
    }
  }

  function chartWidth(container) {
    const available = container.clientWidth || view.clientWidth;
    return Math.max(260, Math.min(620, available / (available > 900 ? 2 : 1) - 24));
  }

  // Which stored per-shift metric the history draws for a quantity, and its unit.
  const SHIFT_METRICS = [
    { test: (q) => q === "noise_laeq", key: "lex8h_db", label: N_("LEX,8h"), unit: "dB(A)" },
    { test: (q) => q.startsWith("vib_"), key: "a8_m_s2", label: N_("A(8)"), unit: "m/s2" },
    { test: (q) => q === "gas" || q === "dust", key: "twa8h_mg_m3", label: N_("TWA"), unit: "mg/m3" },
  ];

  /** A chart of one value per shift (points joined), x = shift start. */
  function shiftChart(title, unitCode, xs, ys, zone, width, extra = {}) {
    const el = h("figure", { class: "card chart history-chart", dataset: { points: xs.length } }, h("figcaption", {}, h("b", {}, unitCode ? `${title}, ${unit(unitCode)}` : title)));
    const plot = new uPlot(
      {
        width,
        height: 200,
        ms: 1,
        tzDate: (ts) => uPlot.tzDate(new Date(ts), zone),
        series: [{}, { label: title, stroke: "#1565c0", width: 1.5, points: { show: true, size: 6 } }],
        scales: { x: { time: true }, y: extra.range ? { range: () => extra.range } : {} },
        axes: [{ stroke: "#555", grid: { stroke: "#eee" }, space: 110, values: timeTicks(zone) }, { stroke: "#555", grid: { stroke: "#eee" }, size: 50, values: valueTicks }],
        legend: { show: false },
      },
      [xs, ys],
      el,
    );
    return [el, plot];
  }

  function historySection(id, zone) {
    const today = new Date();
    const iso = (d) => new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
    const from = h("input", { type: "date", id: "history-from", value: iso(new Date(today - 6 * DAY_MS)), required: true });
    const to = h("input", { type: "date", id: "history-to", value: iso(today), required: true });
    const out = h("div", { id: "history" });
    let plots = [];
    const destroy = () => {
      for (const p of plots) p.destroy();
      plots = [];
    };
    async function load(event) {
      if (event) event.preventDefault();
      destroy();
      fill(out, h("p", { class: "muted" }, t("Loading…")));
      let history;
      try {
        history = await get(`/api/v1/workplaces/${id}/exposure/history?from=${from.value}&to=${to.value}`);
      } catch (err) {
        fill(out, h("p", { class: "error", role: "alert" }, err.message));
        return;
      }
      const shifts = history.shifts;
      if (!shifts.length) {
        fill(out, h("p", { class: "muted", id: "history-empty" }, t("No stored shift assessments between {from} and {to}.", { from: dayText(history.from), to: dayText(history.to) })));
        return;
      }
      const xs = shifts.map((x) => Date.parse(x.start));
      const charts = h("div", { class: "charts" });
      fill(out, charts);
      const width = chartWidth(charts);
      const add = ([el, plot]) => {
        charts.append(el);
        plots.push(plot);
      };
      add(shiftChart(t("harmfulness index В (1–5)"), null, xs, shifts.map((x) => x.B_continuous ?? x.B), zone, width, { range: [0, 5.5] }));
      const sensors = new Map();
      for (const x of shifts) for (const sensor of x.sensors || []) if (!sensors.has(sensor.sensor)) sensors.set(sensor.sensor, sensor);
      for (const sensor of sensors.values()) {
        const metric = SHIFT_METRICS.find((m) => m.test(sensor.quantity));
        if (!metric) continue;
        const ys = shifts.map((x) => {
          const found = (x.sensors || []).find((y) => y.sensor === sensor.sensor);
          const value = found ? found.metrics[metric.key] : null;
          return value === undefined ? null : value;
        });
        add(shiftChart(`${t(metric.label)} — ${quantityLabel(sensor)}`, metric.unit, xs, ys, zone, width));
      }
      out.append(
        gridTable("history-table", [t("Shift"), t("Status"), t("Class"), t("В (1–5)"), t("Coverage"), t("Report")], shifts, (x) => [
          h("td", {}, t("shift {number} of {date}", { number: x.shift, date: dayText(x.date) }), h("br"), h("small", { class: "muted" }, timeIn(zone, x.start))),
          h("td", {}, named(SHIFT_STATUS, x.status), provisional(x.not_enough_data)),
          h("td", {}, badge("class", x.working_class)),
          h("td", { class: "num" }, x.B ?? "—", x.B_continuous !== null ? h("small", { class: "muted" }, ` (${fmt(x.B_continuous)})`) : null),
          h("td", { class: "num" }, x.coverage_min === null ? "—" : `${fmt(x.coverage_min * 100)} %`),
          h("td", {}, reportButtons(id, { date: x.date, shift: x.shift })),
        ], (x) => ({ dataset: { date: x.date, shift: x.shift } })),
      );
    }
    const form = h(
      "form",
      { class: "filters", id: "history-form" },
      h("label", {}, t("From"), from),
      h("label", {}, t("To"), to),
      h("button", { type: "submit", class: "small" }, t("Show")),
    );
    form.addEventListener("submit", load);
    load();
    return [h("section", {}, h("h2", {}, t("Past shifts"), h("small", {}, t("stored shift assessments; times in {zone}", { zone }))), form, out), destroy];
  }

  function reportButtons(id, shift) {
    return ["pdf", "xlsx", "csv"].map((format) => h("button", { type: "button", class: "small secondary", onclick: () => download(id, shift, format) }, format.toUpperCase()));
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
    const [history, stopHistory] = historySection(id, zone);
    show(
      h("div", { class: "title-row" }, h("h1", { id: "workplace-name" }, exposure.workplace_name), dot),
      head,
      h("p", { class: "reports" }, t("Report of this shift:"), reportButtons(id, exposure.shift)),
      h("h2", {}, t("Exposure this shift")),
      cards,
      h("h2", {}, t("Live readings"), h("small", {}, t("last {minutes} min, times in {zone}", { minutes: CHART_WINDOW_MS / 60000, zone }))),
      charts,
      feed,
      history,
    );

    const width = chartWidth(charts);
    const bySensor = new Map();
    for (const sensor of exposure.sensors) {
      const chart = new SensorChart(sensor, zone, width);
      bySensor.set(sensor.sensor_id, chart);
      charts.append(chart.el);
    }
    const showExposure = (e) => {
      const elapsed = Math.min(1, e.elapsed_s / e.shift.duration_s);
      fill(
        head,
        h("div", { class: "facts" },
          h("div", {}, h("small", {}, t("enterprise")), h("b", {}, e.enterprise_name || e.enterprise)),
          h("div", {}, h("small", {}, t("shift {number} of {date}", { number: e.shift.shift, date: dayText(e.shift.date) })), h("b", {}, `${timeIn(zone, e.shift.start)} – ${timeIn(zone, e.shift.end)}`)),
          h("div", {}, h("small", {}, e.running ? t("elapsed") : t("shift ended")), h("b", {}, duration(e.elapsed_s))),
          h("div", {}, h("small", {}, t("class (if the shift goes on as so far)")), badge("class", e.working_class)),
          h("div", {}, h("small", {}, t("harmfulness index В (1–5)")), h("b", { class: "big", id: "b-index" }, e.B ?? "—", h("small", {}, e.B_continuous !== null ? ` (${fmt(e.B_continuous)})` : ""))),
          h("div", { id: "data-sufficiency" }, h("small", {}, t("data so far")), provisional(e.not_enough_data) || h("b", {}, t("coverage {value} %", { value: fmt((e.coverage_min ?? 0) * 100) }))),
        ),
        h("div", { class: "progress", title: t("{value} % of the shift", { value: Math.round(elapsed * 100) }) }, h("div", { dataset: { width: `${elapsed * 100}%` } })),
        e.deciding_factors.length ? h("p", { class: "muted" }, t("Deciding factors: {factors}.", { factors: e.deciding_factors.map(factorName).join(", ") })) : null,
      );
      cards.replaceChildren(...e.sensors.filter((x) => x.running || x.note).map(exposureCard));
      applyGeometry(head);
      applyGeometry(cards);
    };
    showExposure(exposure);

    // The charts start with the last minutes from the database, then follow the broker.
    const since = new Date(Date.now() - CHART_WINDOW_MS).toISOString();
    await Promise.all(
      exposure.sensors.map(async (x) => {
        const got = await get(`/api/v1/sensors/${x.sensor_id}/readings?from=${encodeURIComponent(since)}&limit=5000`);
        if (got.times.length) bySensor.get(x.sensor_id).add(got.times.map((at) => Date.parse(at)), got.values);
      }),
    );
    if (!alive()) {
      stopAlerts();
      stopHistory();
      return;
    }
    const stopLive = stream(`/api/v1/workplaces/${id}/live`, (event, data) => {
      if (event === "readings") {
        for (const x of data.sensors) bySensor.get(x.sensor_id)?.add(x.times, x.values);
      } else if (event === "exposure") {
        showExposure(data);
      }
    }, setState);
    return () => {
      stopLive();
      stopAlerts();
      stopHistory();
      for (const chart of bySensor.values()) chart.plot.destroy();
    };
  }

  function download(id, shift, format) {
    return save(`/api/v1/workplaces/${id}/report?date=${shift.date}&shift=${shift.shift}&format=${format}`, `qorgau-workplace-${id}-${shift.date}-shift${shift.shift}.${format}`);
  }

  /** Save what the API answers at `path` as a file: fetched with the token in its header (a
   * plain link would have to carry the token in the URL). */
  async function save(path, filename) {
    const blob = await call("GET", path);
    const link = h("a", { href: URL.createObjectURL(blob), download: filename });
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
      // The language chosen on the token counts when this browser has made no choice of its own.
      if (me.locale && me.locale !== i18n.locale && !localStorage.getItem(LOCALE_KEY)) await loadCatalogue(me.locale);
      document.getElementById("who-name").textContent = `${me.name} (${named(ROLES, me.role)})`;
      const [, route, id] = location.hash.match(/^#\/([a-z]*)\/?(\d*)/) || [];
      view.replaceChildren(h("p", { class: "muted" }, t("Loading…")));
      let stop;
      if (route === "workplace" && id) stop = await workplaceView(Number(id), alive);
      else if (route === "enterprise" && id) stop = await enterpriseView(Number(id), alive);
      else if (route === "alerts") stop = await alertsView();
      else stop = await mapView(alive);
      if (stop && !alive()) stop();
      else if (stop) cleanup = stop;
    } catch (err) {
      if (err.status === 401 || !alive()) return;
      view.replaceChildren(h("p", { class: "error", role: "alert" }, err.status === 404 ? t("Not found, or not visible to this token.") : t("Could not load: {reason}", { reason: err.message })));
    }
  }

  document.getElementById("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => render());
  setupLanguages()
    .catch(() => {})
    .then(() => render());
})();
