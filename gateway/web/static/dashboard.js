"use strict";
const {el, api, clear} = WA;
// Meta's codes a newcomer meets first, in words (each reply's thread says the rest).
const FAILURE_NAMES = {"131047": "131047 outside the 24-hour window, no template"};

function figure(label, value) {
  return el("div", {class: "card"}, el("div", {}, label),
            el("div", {class: "figure"}, value === null || value === undefined ? "–" : value));
}

async function refresh() {
  const health = document.getElementById("health");
  try {
    const h = await fetch("/api/health").then((r) => r.json());
    clear(health).append(el("h2", {}, "Health: " + h.status),
      el("table", {}, Object.entries(h.checks || {}).map(([name, c]) =>
        el("tr", {}, el("td", {}, name), el("td", {class: c.ok ? "ok" : "error"},
          c.ok ? "ok" : "failing"), el("td", {}, c.ms + " ms"), el("td", {}, c.detail || "")))));
  } catch (err) { clear(health).append(el("p", {class: "error"}, WA.errorText(err))); }
  try {
    const s = await api("/api/stats?minutes=60");
    const ms = (v) => v === null ? null : Math.round(v) + " ms";
    clear(document.getElementById("figures")).append(
      figure("Bot conversations", s.conversations_by_state.bot),
      figure("With a person", s.conversations_by_state.human),
      figure("Closed", s.conversations_by_state.closed),
      figure("Waiting for a person", s.needs_human),
      figure("Reply latency p50", ms(s.reply_latency_p50_ms)),
      figure("Reply latency p95", ms(s.reply_latency_p95_ms)),
      figure("LLM fallback rate", s.llm_fallback_rate === null ? null
        : (100 * s.llm_fallback_rate).toFixed(1) + " %"),
      figure("Delivery failures", Object.entries(s.delivery_failures_by_code)
        .map(([code, n]) => (FAILURE_NAMES[code] || code) + ": " + n).join(", ") || "none"));
    clear(document.getElementById("per-minute")).append(
      el("tr", {}, el("th", {}, "Minute"), el("th", {}, "In"), el("th", {}, "Out")),
      ...s.per_minute.slice(-15).reverse().map((m) => el("tr", {}, el("td", {}, WA.time(m.minute)),
        el("td", {}, m.inbound), el("td", {}, m.outbound))));
  } catch (err) { /* header handles an expired session */ }
  try {
    const a = await api("/api/account-events?limit=20");
    document.getElementById("account-empty").hidden = a.events.length > 0;
    clear(document.getElementById("account-events")).append(...(a.events.length ? [
      el("tr", {}, el("th", {}, "Time"), el("th", {}, "Notice"), el("th", {}, "About"),
        el("th", {}, "Event"))] : []),
      ...a.events.map((e) => el("tr", {"data-field": e.field}, el("td", {}, WA.time(e.received_at)),
        el("td", {}, ACCOUNT_FIELDS[e.field] || e.field), el("td", {}, e.subject || ""),
        el("td", {}, e.event || ""))));
  } catch (err) { /* header handles an expired session */ }
}

// What each of Meta's fields means to an operator.
const ACCOUNT_FIELDS = {
  message_template_status_update: "Template status",
  message_template_quality_update: "Template quality",
  template_category_update: "Template category",
  account_update: "Account",
  account_alerts: "Account alert",
  phone_number_quality_update: "Number quality",
  user_preferences: "Customer preference",
};

WA.header("/dashboard");
refresh();
setInterval(refresh, 10000);
