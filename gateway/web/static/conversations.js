"use strict";
// The inbox: a filtered list, the selected thread with its statuses, take-over / return /
// close, labels, assignment and a reply box with canned responses. Live events refresh
// what they concern; every customer-supplied string goes in as text.
const {el, api, clear} = WA;

const state = {selected: null, cursor: null, users: [], canned: [], me: null};

function filterQuery() {
  const params = new URLSearchParams({limit: "50"});
  for (const [id, name] of [["filter-state", "state"], ["filter-assigned", "assigned"],
                            ["filter-label", "label"], ["filter-q", "q"]]) {
    const value = document.getElementById(id).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function listItem(c) {
  const title = c.customer_name || c.customer_phone;
  return el("li", {"data-conversation-id": c.id, "data-state": c.state,
                   class: c.id === state.selected ? "selected" : null,
                   onclick: () => select(c.id)},
    el("div", {}, el("strong", {class: "customer-name"}, title),
      el("span", {class: "badge " + c.state}, c.state),
      c.needs_human ? el("span", {class: "badge needs"}, "needs a person") : null,
      c.labels.map((l) => el("span", {class: "badge"}, l))),
    el("div", {class: "customer-phone"}, c.customer_phone),
    el("div", {class: "preview"}, c.last_message_text || ""),
    el("div", {class: "meta"}, WA.time(c.updated_at)));
}

async function loadList(append) {
  const params = filterQuery();
  if (append && state.cursor) params.set("cursor", state.cursor);
  let page;
  try { page = await api("/api/conversations?" + params); } catch (err) { return; }
  const list = document.getElementById("conversation-list");
  if (!append) clear(list);
  list.append(...page.conversations.map(listItem));
  state.cursor = page.next_cursor;
  document.getElementById("list-more").hidden = !page.next_cursor;
}

function statusLine(m) {
  const history = m.statuses.map((s) => s.status).join(" → ");
  const who = m.direction === "outbound"
    ? (m.sent_by_user_id ? operatorName(m.sent_by_user_id) : "bot" + (m.model ? " · " + m.model : ""))
    : "customer";
  return el("div", {class: "meta"}, who + " · " + WA.time(m.created_at) + " · ",
    el("span", {class: "status", "data-status": m.status}, history || m.status),
    m.error_title ? el("span", {class: "error"}, " " + m.error_title) : null,
    m.status === "dead" ? deadLetter(m) : null);
}

// A dead letter: every try failed. Its error, and a retry that routes it to the bot again.
function deadLetter(m) {
  return el("span", {class: "dead-letter"},
    el("span", {class: "error"}, " dead after " + m.attempts + " tries: " + (m.last_error || "")),
    " ",
    el("button", {type: "button", class: "retry", "data-retry-id": m.id,
                  onclick: () => act("/messages/" + m.id + "/retry")}, "Retry"));
}

function operatorName(id) {
  const user = state.users.find((u) => u.id === id);
  return user ? user.display_name : "operator " + id;
}

function messageNode(m) {
  return el("div", {class: "message " + m.direction, "data-message-id": m.id,
                    "data-direction": m.direction},
    el("div", {class: "text"}, m.text === null ? "[" + m.type + "]" : m.text), statusLine(m));
}

async function act(path, body) {
  try {
    await api("/api/conversations/" + state.selected + path, {method: "POST", body: body || {}});
  } catch (err) { showError(err); }
  await Promise.all([loadThread(), loadList(false)]);
}

function showError(err) {
  const box = document.getElementById("thread-error");
  if (box) box.textContent = WA.errorText(err);
}

async function loadThread() {
  if (!state.selected) return;
  let detail;
  try { detail = await api("/api/conversations/" + state.selected + "?limit=100"); }
  catch (err) { return; }
  const c = detail.conversation;
  const thread = clear(document.getElementById("thread"));
  const assign = el("select", {id: "assign", onchange: (e) =>
      act("/assign", {user_id: e.target.value ? Number(e.target.value) : null})},
    el("option", {value: ""}, "Unassigned"),
    state.users.map((u) => el("option", {value: u.id, selected: u.id === c.assigned_user_id},
                              u.display_name)));
  const labelInput = el("input", {id: "label-input", placeholder: "Add label", size: 10});
  thread.append(
    el("header", {},
      el("strong", {id: "thread-title"}, c.customer_name || c.customer_phone),
      el("span", {}, c.customer_phone),
      el("span", {class: "badge " + c.state, id: "thread-state"}, c.state),
      c.state !== "human"
        ? el("button", {id: "take-over", onclick: () => act("/handoff", {})}, "Take over")
        : el("button", {id: "return-to-bot", class: "secondary",
                        onclick: () => act("/return")}, "Return to bot"),
      c.state !== "closed"
        ? el("button", {id: "close", class: "secondary", onclick: () => act("/close")}, "Close")
        : null,
      assign,
      el("span", {id: "labels"}, c.labels.map((l) => el("span", {class: "badge"}, l, " ",
        el("a", {href: "#", title: "remove", onclick: async (e) => {
          e.preventDefault();
          try {
            await api("/api/conversations/" + c.id + "/labels/" + encodeURIComponent(l),
                      {method: "DELETE"});
          } catch (err) { showError(err); }
          loadThread(); loadList(false);
        }}, "×")))),
      el("form", {onsubmit: (e) => {
        e.preventDefault();
        if (labelInput.value.trim()) act("/labels", {label: labelInput.value.trim()});
      }}, labelInput),
      c.handoff_reason ? el("span", {class: "meta"}, "hand-off: " + c.handoff_reason) : null),
    el("div", {class: "messages", id: "messages"}, detail.messages.map(messageNode)),
    el("p", {class: "error", id: "thread-error", role: "alert"}),
    replyBox());
  const messages = document.getElementById("messages");
  messages.scrollTop = messages.scrollHeight;
}

// One reply box for the page, moved into each re-rendered thread, so a live update never
// wipes what the operator is typing.
function replyBox() {
  if (!state.replyBox) state.replyBox = buildReplyBox();
  return state.replyBox;
}

function buildReplyBox() {
  const text = el("textarea", {id: "reply-text", placeholder: "Write a reply…", maxlength: 4096});
  const canned = el("select", {id: "canned", onchange: (e) => {
      const pick = state.canned.find((r) => String(r.id) === e.target.value);
      if (pick) text.value = pick.body;
      e.target.value = "";
    }}, el("option", {value: ""}, "Canned…"),
    state.canned.map((r) => el("option", {value: r.id}, r.title)));
  const send = el("button", {id: "send-reply", type: "submit"}, "Send");
  return el("form", {class: "replybox", onsubmit: async (e) => {
    e.preventDefault();
    if (!text.value.trim()) return;
    send.disabled = true;
    try {
      await api("/api/conversations/" + state.selected + "/reply",
                {method: "POST", body: {text: text.value}});
      text.value = "";
    } catch (err) { showError(err); }
    send.disabled = false;
    loadThread();
  }}, canned, text, send);
}

function select(id) {
  if (state.selected !== id && state.replyBox) state.replyBox.reset();
  state.selected = id;
  history.replaceState(null, "", "?c=" + id);
  for (const li of document.querySelectorAll("#conversation-list li")) {
    li.classList.toggle("selected", Number(li.dataset.conversationId) === id);
  }
  loadThread();
}

let listTimer = null;
let threadTimer = null;
function onEvent(event) {
  // Lets a watcher (and the browser test) know the live stream is connected.
  if (event.type === "ready") document.body.dataset.live = "ready";
  // Debounced: a burst of events costs one fetch of each.
  if (event.type === "ready" || event.type === "resync" ||
      event.type === "message.new" || event.type === "conversation.updated" ||
      event.type === "message.processed" || event.type === "message.dead") {
    clearTimeout(listTimer);
    listTimer = setTimeout(() => loadList(false), 150);
  }
  if (state.selected && (event.conversation_id === state.selected ||
      event.type === "message.status" || event.type === "resync")) {
    clearTimeout(threadTimer);
    threadTimer = setTimeout(loadThread, 150);
  }
}

(async () => {
  state.me = await WA.header("/dashboard/conversations");
  try { state.users = (await api("/api/users")).users; } catch (_) { /* optional */ }
  try { state.canned = (await api("/api/canned-responses")).canned_responses; } catch (_) { }
  for (const id of ["filter-state", "filter-assigned"]) {
    document.getElementById(id).addEventListener("change", () => loadList(false));
  }
  for (const id of ["filter-label", "filter-q"]) {
    document.getElementById(id).addEventListener("input", () => {
      clearTimeout(listTimer);
      listTimer = setTimeout(() => loadList(false), 300);
    });
  }
  document.getElementById("load-more").addEventListener("click", () => loadList(true));
  const chosen = Number(WA.param("c"));
  await loadList(false);
  if (chosen) select(chosen);
  WA.live(onEvent);
})();
