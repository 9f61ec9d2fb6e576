"use strict";

// Only a page of this site: an open redirect would help phishing. Checked by parsing
// `next` against our origin as the browser will, since a URL parser reads a backslash as
// "/" ("/\evil.example" is "//evil.example", another site); a prefix check cannot see that.
function safeNext(next, origin) {
  if (!next) return "/dashboard";
  let url;
  try { url = new URL(next, origin); } catch (_) { return "/dashboard"; }
  return url.origin === origin ? url.pathname + url.search + url.hash : "/dashboard";
}

function goNext() {
  location.href = safeNext(WA.param("next"), location.origin);
}

// The session cookie lives as long as the access token; a still-valid refresh cookie
// logs the operator back in without the form.
fetch("/api/auth/refresh", {method: "POST", credentials: "same-origin",
                            headers: {"Content-Type": "application/json"}, body: "{}"})
  .then((r) => { if (r.ok) goNext(); }).catch(() => {});
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    await WA.api("/api/auth/login", {method: "POST", body: {
      email: document.getElementById("email").value,
      password: document.getElementById("password").value,
    }});
    goNext();
  } catch (err) {
    error.textContent = WA.errorText(err);
  }
});
