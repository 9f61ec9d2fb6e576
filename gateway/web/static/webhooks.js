"use strict";
const {el, api, clear} = WA;

async function refresh() {
  const outcome = document.getElementById("filter-outcome").value;
  const page = await api("/api/webhook-events?limit=200" +
    (outcome ? "&outcome=" + encodeURIComponent(outcome) : ""));
  clear(document.getElementById("webhook-rows")).append(...page.events.map((e) =>
    el("tr", {"data-outcome": e.outcome}, el("td", {}, WA.time(e.received_at)),
      el("td", {}, e.source), el("td", {}, e.kind), el("td", {}, e.outcome),
      el("td", {}, e.http_status), el("td", {}, e.message_count), el("td", {}, e.status_count),
      el("td", {}, e.latency_ms === null ? "" : e.latency_ms.toFixed(1) + " ms"),
      el("td", {}, e.detail || ""))));
  await refreshUnparsed();
}

// Admins see what Meta sent that could not be read; agents do not (it may hold text).
async function refreshUnparsed() {
  const card = document.getElementById("unparsed-card");
  let page;
  try { page = await api("/api/webhook-unparsed?limit=20"); } catch (err) { card.hidden = true; return; }
  card.hidden = page.items.length === 0;
  clear(document.getElementById("unparsed-rows")).append(...page.items.map((u) =>
    el("tr", {}, el("td", {}, WA.time(u.received_at)), el("td", {}, u.field),
      el("td", {}, u.error), el("td", {}, el("code", {}, u.raw.slice(0, 300))))));
}

WA.header("/dashboard/webhooks");
document.getElementById("filter-outcome").addEventListener("change", refresh);
refresh();
// The log is written a moment after each answer (with its latency), so poll it.
setInterval(refresh, 3000);
