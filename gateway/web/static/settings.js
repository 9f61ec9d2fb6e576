"use strict";
const {el, api, clear} = WA;
const KEYS = ["system_prompt", "models", "faq", "flows", "business_hours", "window_template"];

function editor(key, value, overridden) {
  const isText = key === "system_prompt";
  const area = el("textarea", {id: "setting-" + key, rows: isText ? 6 : 10},
                  isText ? value : JSON.stringify(value, null, 2));
  const message = el("p", {class: "error", id: "setting-error-" + key});
  return el("div", {class: "card"},
    el("h2", {}, key, overridden ? el("span", {class: "badge"}, "edited") : null),
    area,
    el("p", {}, el("button", {id: "save-" + key, onclick: async () => {
        message.textContent = "";
        let body;
        try { body = isText ? {value: area.value} : JSON.parse(area.value); }
        catch (err) { message.textContent = "not valid JSON: " + err.message; return; }
        try {
          await api("/api/settings/" + key, {method: "PUT", body});
          message.className = "ok";
          message.textContent = "Saved. It takes effect without a restart.";
        } catch (err) { message.className = "error"; message.textContent = WA.errorText(err); }
      }}, "Save"), " ",
      el("button", {class: "secondary", onclick: async () => {
        await api("/api/settings/" + key, {method: "DELETE"});
        load();
      }}, "Revert to default")),
    message);
}

async function load() {
  const box = clear(document.getElementById("settings"));
  let s;
  try { s = await api("/api/settings"); }
  catch (err) {
    document.getElementById("settings-note").textContent =
      err.status === 403 ? "Only admins can change settings." : WA.errorText(err);
    return;
  }
  const example = {business_hours: {timezone: "Europe/Berlin", weekly: {mon: ["09:00-18:00"]}},
                   window_template: {name: "follow_up", language: "en_US"}};
  box.append(...KEYS.map((key) => editor(key, s[key] === null ? example[key] : s[key],
                                         s.overridden.includes(key))));
}

async function loadCanned() {
  const list = clear(document.getElementById("canned-list"));
  const data = await api("/api/canned-responses");
  list.append(...data.canned_responses.map((r) => el("li", {}, el("strong", {}, r.title), ": ",
    r.body, " ", el("button", {class: "secondary", onclick: async () => {
      await api("/api/canned-responses/" + r.id, {method: "DELETE"});
      loadCanned();
    }}, "Delete"))));
}

document.getElementById("canned-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = document.getElementById("canned-error");
  error.textContent = "";
  try {
    await api("/api/canned-responses", {method: "POST", body: {
      title: document.getElementById("canned-title").value,
      body: document.getElementById("canned-body").value}});
    e.target.reset();
    loadCanned();
  } catch (err) { error.textContent = WA.errorText(err); }
});

document.getElementById("invite-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = clear(document.getElementById("invite-result"));
  const email = document.getElementById("invite-email").value.trim();
  try {
    const invite = await api("/api/auth/invites", {method: "POST", body: {
      email: email || null, role: document.getElementById("invite-role").value}});
    const url = location.origin + invite.register_url;
    out.append("Send this link (valid until " + WA.time(invite.expires_at) + "): ",
               el("a", {href: url, id: "invite-link"}, url));
  } catch (err) { out.append(el("span", {class: "error"}, WA.errorText(err))); }
});

function diagnostic(id, run) {
  document.getElementById(id).addEventListener("click", async () => {
    const out = document.getElementById("diag-output");
    out.textContent = "running…";
    try { out.textContent = JSON.stringify(await run(), null, 2); }
    catch (err) { out.textContent = WA.errorText(err); }
  });
}
diagnostic("diag-db", () => api("/api/db-test"));
diagnostic("diag-llm", () => api("/api/test-llm", {method: "POST", body: {}}));
diagnostic("diag-instructions", () => api("/api/test/instructions"));

WA.header("/dashboard/settings");
load();
loadCanned();
