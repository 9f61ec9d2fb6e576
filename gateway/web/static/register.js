"use strict";
(async () => {
  const invite = WA.param("invite");
  if (invite) document.getElementById("invite").value = invite;
  try {
    const info = await WA.api("/api/auth/registration");
    document.getElementById("register-note").textContent = info.needs_bootstrap_secret
      ? "You are the first operator: enter ADMIN_BOOTSTRAP_SECRET as the invite code."
      : info.open_to_first_user
      ? "You are the first operator: you will be the admin."
      : info.mode === "closed" ? "Registration is closed. Ask an admin."
      : "Registration needs an invite code from an admin.";
  } catch (_) { /* the form still works */ }
})();
document.getElementById("register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("register-error");
  error.textContent = "";
  const invite = document.getElementById("invite").value.trim();
  try {
    await WA.api("/api/auth/register", {method: "POST", body: {
      display_name: document.getElementById("display-name").value,
      email: document.getElementById("email").value,
      password: document.getElementById("password").value,
      invite: invite || null,
      // The first admin of a production service gives the bootstrap secret in this field.
      bootstrap_secret: invite || null,
    }});
    location.href = "/dashboard";
  } catch (err) {
    error.textContent = WA.errorText(err);
  }
});
