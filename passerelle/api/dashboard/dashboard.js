// passerelle dashboard: vanilla JS over the read-only JSON API (docs/api.md). No build step.
// Every user-written string (hosts, paths, names) goes into the page as text, never as HTML.
"use strict";

const REFRESH_MS = 5000;
const PER_PAGE = 200;
const TYPING_MS = 250;  // the filter box asks the API once typing pauses this long
const READY = "listed ready by Kubernetes (EndpointSlice); passerelle runs no health checks of its own";

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function badge(text, cls) {
  return el("span", { class: `badge ${cls || text}` }, text);
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `${response.status} ${response.statusText}`);
  return { body, next: response.headers.get("X-Next-Page") };
}

function fill(tableId, rows, empty) {
  const body = document.querySelector(`#${tableId} tbody`);
  const columns = document.querySelectorAll(`#${tableId} thead th`).length;
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty))]));
}

function more(id, next) {
  document.getElementById(id).textContent = next && next !== "1" ? `showing the first ${PER_PAGE}; filter to narrow` : "";
}

function renderOverview(o) {
  document.getElementById("version").textContent = `configuration v${o.version}`;
  const box = (label, value, detail) => el("div", {}, el("b", {}, value), label, detail ? el("div", { class: "muted" }, detail) : null);
  const h = o.http;
  document.getElementById("overview").replaceChildren(
    box("routers", h.routers.total, h.routers.warnings ? `${h.routers.warnings} with warnings` : ""),
    box("services", h.services.total, h.services.errors ? `${h.services.errors} without endpoints` : ""),
    box("middlewares", h.middlewares.total),
    box("certificates", o.tls.certificates.total,
      [o.tls.certificates.expired && `${o.tls.certificates.expired} expired`, o.tls.certificates.expiring && `${o.tls.certificates.expiring} expiring`].filter(Boolean).join(", ")),
    box("problems", o.problems.errors + o.problems.warnings, `${o.problems.errors} errors, ${o.problems.warnings} warnings`),
    box("entry points", o.entryPoints.length, o.entryPoints.join(", ")),
  );
}

function renderProblems(problems) {
  document.getElementById("problems-count").textContent = `(${problems.length})`;
  fill("problems", problems.map((p) => el("tr", { class: "problem" },
    el("td", {}, badge(p.severity)), el("td", {}, p.object), el("td", { class: "mono" }, p.file), el("td", {}, p.message))), "no problems");
}

function renderRouters(routers, next) {
  document.getElementById("routers-count").textContent = `(${routers.length}${next && next !== "1" ? "+" : ""})`;
  fill("routers", routers.map((r) => el("tr", { class: "router", "data-name": r.name },
    el("td", {}, badge(r.status), r.problems.length ? el("div", { class: "muted" }, r.problems.map((p) => p.message).join("; ")) : null),
    el("td", { class: "mono" }, r.rule),
    el("td", {}, r.using.join(", "), r.tls ? el("div", { class: "muted" }, `TLS option ${r.tls.options}`) : null),
    el("td", {}, r.middlewares.join(", ")),
    el("td", { class: "mono" }, r.service),
    el("td", {}, r.source, r.file ? el("div", { class: "muted mono" }, r.file) : null))), "no routers");
  more("routers-more", next);
}

function serverState(status) {
  // "UP" (Traefik's word) is Kubernetes readiness, not a health check: say so.
  if (status !== "UP") return badge(status || "?");
  const shown = badge("ready", "UP");
  shown.title = READY;
  return shown;
}

function renderServices(services, next) {
  document.getElementById("services-count").textContent = `(${services.length}${next && next !== "1" ? "+" : ""})`;
  fill("services", services.map((s) => el("tr", { class: "service" },
    el("td", {}, badge(s.status)),
    el("td", { class: "mono" }, s.name),
    el("td", {}, s.weighted
      ? el("ul", { class: "plain" }, s.weighted.services.map((w) => el("li", { class: "mono" }, `${w.name} (weight ${w.weight})`)))
      : s.loadBalancer.servers.length
      ? el("ul", { class: "plain" }, s.loadBalancer.servers.map((v) => el("li", { class: "mono" }, v.url, " ", serverState(s.serverStatus[v.url]))))
      : el("span", { class: "error" }, s.unavailable)),
    el("td", {}, s.usedBy.join(", ")))), "no services");
  more("services-more", next);
}

function renderCertificates(certs) {
  document.getElementById("certificates-count").textContent = `(${certs.length})`;
  fill("certificates", certs.map((c) => el("tr", { class: "certificate" },
    el("td", {}, badge(c.status || "?"), el("div", { class: "mono" }, c.notAfter), c.daysLeft !== undefined ? el("div", { class: "muted" }, `${c.daysLeft} days left`) : null),
    el("td", { class: "mono" }, c.subject || "", c.default ? el("div", { class: "muted" }, "default certificate") : null),
    el("td", { class: "mono" }, (c.sans || c.names).join(", ")),
    el("td", {}, c.source),
    el("td", { class: "mono" }, c.usedBy.join(", ")))), "no TLS entry point");
}

let refreshes = 0;  // the newest refresh's number: a reply to an older one is dropped

async function refresh() {
  const asked = ++refreshes;
  const search = encodeURIComponent(document.getElementById("routers-search").value.trim());
  try {
    const [overview, problems, routers, services, certs] = await Promise.all([
      getJSON("/api/overview"), getJSON("/api/problems"),
      getJSON(`/api/http/routers?per_page=${PER_PAGE}&search=${search}`),
      getJSON(`/api/http/services?per_page=${PER_PAGE}`), getJSON("/api/tls/certificates"),
    ]);
    if (asked !== refreshes) return;  // a newer filter (or the timer) asked since: its reply counts
    renderOverview(overview.body);
    renderProblems(problems.body);
    renderRouters(routers.body, routers.next);
    renderServices(services.body, services.next);
    renderCertificates(certs.body);
    document.getElementById("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (asked === refreshes) document.getElementById("status").textContent = `cannot read the API: ${error.message}`;
  }
}

function renderExplanation(x) {
  const rows = [];
  const row = (label, ...value) => rows.push(el("dt", {}, label), el("dd", {}, ...value));
  const r = x.result;
  row("answer", el("span", { class: `answer ${r.action}`, id: "explain-answer" }, r.status ? `${r.status} ` : "", r.detail));
  row("entry point", x.entryPoint ? `${x.entryPoint.name} (port ${x.entryPoint.port}${x.entryPoint.tls ? ", TLS" : ""}): ${x.entryPoint.chosenBecause}` : "none");
  if (x.tls) {
    const c = x.tls.certificate;
    const o = x.tls.option;
    const asks = o ? ` — ${o.minVersion}${o.maxVersion ? `..${o.maxVersion}` : "+"}, ALPN ${o.alpnProtocols.join(", ")}, client certificates: ${o.clientAuthType}` : "";
    row("TLS", `option ${x.tls.options} (from ${x.tls.optionsFrom})${asks}; certificate `,
      el("span", { class: "mono", id: "explain-certificate" }, [c.subject, c.names.join(", ")].filter(Boolean).join("; ")), ` — ${x.tls.certificateChosenBecause}; expires ${c.notAfter}`);
  }
  row("router", x.router ? el("span", { id: "explain-router" }, el("span", { class: "mono" }, x.router.name), ` ${x.router.rule} — ${x.router.source}${x.router.file ? ` (${x.router.file})` : ""}`) : "none");
  row("middlewares", x.middlewares.length ? el("ul", { class: "plain" }, x.middlewares.map((m) => el("li", {}, `${m.name} (${m.kind})${m.applied ? "" : " — not reached"}`))) : "none");
  if (x.service) {
    row("service", el("span", { class: "mono" }, x.service.name), x.service.servers.length
      ? el("ul", { class: "plain" }, x.service.servers.map((s) => el("li", { class: "mono" }, s)))
      : el("div", { class: "error" }, x.service.unavailable));
  }
  row("other routers", x.others.length
    ? el("ul", { class: "plain", id: "explain-others" }, x.others.map((o) => el("li", {}, el("span", { class: "mono" }, o.rule), ` — ${o.reason}: ${o.detail}`)),
      x.othersLeftOut ? el("li", { class: "muted" }, `and ${x.othersLeftOut} more`) : null)
    : "none for this host");
  return el("dl", {}, rows);
}

let explains = 0;  // as refreshes: only the newest question's answer is shown

async function explain(event) {
  event.preventDefault();
  const asked = ++explains;
  const url = document.getElementById("explain-url").value.trim();
  const method = document.getElementById("explain-method").value;
  const host = document.getElementById("explain-host").value.trim();
  const out = document.getElementById("explain-result");
  let query = `url=${encodeURIComponent(url)}&method=${encodeURIComponent(method)}`;
  if (host) query += `&header=${encodeURIComponent(`Host: ${host}`)}`;
  try {
    const { body } = await getJSON(`/api/explain?${query}`);
    if (asked !== explains) return;
    out.replaceChildren(renderExplanation(body));
  } catch (error) {
    if (asked !== explains) return;
    out.replaceChildren(el("p", { class: "error", id: "explain-error" }, error.message));
  }
  out.dataset.done = String(Number(out.dataset.done || 0) + 1);
}

document.getElementById("explain-form").addEventListener("submit", explain);
let typing = null;
document.getElementById("routers-search").addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(refresh, TYPING_MS);
});
refresh();
setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);  // no polling from a background tab
