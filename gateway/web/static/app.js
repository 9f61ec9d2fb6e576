// Shared by every page: the API client, a safe element builder, live events, the header.
// Text is only ever inserted as text nodes (never parsed as HTML), so customer messages such
// as "<script>" are shown, not run.
"use strict";

const WA = (() => {
  async function refreshSession() {
    const r = await fetch("/api/auth/refresh", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: "{}",
    });
    return r.ok;
  }

  async function api(path, opts = {}) {
    const init = {method: opts.method || "GET", credentials: "same-origin",
                  headers: {"Accept": "application/json"}};
    if (opts.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let res = await fetch(path, init);
    if (res.status === 401 && !path.startsWith("/api/auth/")) {
      if (await refreshSession()) {
        res = await fetch(path, init);
      } else {
        location.href = "/login?next=" + encodeURIComponent(location.pathname);
        throw new Error("session expired");
      }
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = {error: text}; }
    }
    if (!res.ok) {
      const err = new Error((data && data.error) || res.statusText);
      err.status = res.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function time(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString([], {dateStyle: "short", timeStyle: "medium"});
  }

  function errorText(err) {
    if (err && err.data && Array.isArray(err.data.detail)) {
      return err.message + ": " + err.data.detail.map(d => d.loc.join(".") + " " + d.msg).join("; ");
    }
    return (err && err.message) || String(err);
  }

  // Server-Sent Events with reconnection; a lost session is refreshed, then we reconnect.
  function live(onEvent) {
    let source = null;
    function connect() {
      source = new EventSource("/api/events");
      source.addEventListener("ready", () => onEvent({type: "ready"}));
      // The server ends the stream with the access token: renew it, then listen again.
      source.addEventListener("expired", async () => {
        source.close();
        await refreshSession();
        setTimeout(connect, 100);
      });
      source.addEventListener("logged-out", () => { source.close(); location.href = "/login"; });
      source.onmessage = (e) => { try { onEvent(JSON.parse(e.data)); } catch (_) { /* ignore */ } };
      source.onerror = async () => {
        if (source.readyState === EventSource.CLOSED) {
          await refreshSession();
          setTimeout(connect, 1000);
        }
      };
    }
    connect();
    return () => source && source.close();
  }

  async function header(active) {
    const bar = document.getElementById("nav");
    if (!bar) return null;
    let me = null;
    try { me = await api("/api/auth/me"); } catch (_) { return null; }
    const links = [["/dashboard", "Overview"], ["/dashboard/conversations", "Conversations"],
                   ["/dashboard/webhooks", "Webhooks"], ["/dashboard/settings", "Settings"],
                   ["/docs", "API docs"]];
    clear(bar).append(
      el("strong", {class: "brand"}, "wa-support"),
      ...links.map(([href, label]) =>
        el("a", {href, class: href === active ? "active" : null}, label)),
      el("span", {class: "spacer"}),
      el("span", {class: "who", id: "who"}, me.display_name + " (" + me.role + ")"),
      el("button", {id: "logout", onclick: async () => {
        await api("/api/auth/logout", {method: "POST", body: {}});
        location.href = "/login";
      }}, "Log out"));
    return me;
  }

  function param(name) { return new URLSearchParams(location.search).get(name); }

  return {api, el, clear, time, errorText, live, header, param};
})();
