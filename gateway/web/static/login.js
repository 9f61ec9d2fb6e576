"use strict";

function goNext() {
  const next = WA.param("next");
  // Only our own paths: an open redirect would help phishing.
  location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : "/dashboard";
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
