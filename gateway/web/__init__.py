"""The operators' pages: static HTML shells and plain JavaScript, no build step, no CDN.

Pages hold no data when served; their scripts fetch it from the API and insert it as
text nodes only. The Content-Security-Policy allows scripts from this origin alone, so
even an injected <script> would not run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# (path, title, script, body). Bodies are fixed markup: nothing from a request goes in.
_PAGES = (
    (
        "/",
        "wa-support",
        "landing.js",
        """
<main class="auth card"><h1>wa-support</h1>
<p>WhatsApp customer support: an AI answers, your team steps in when it matters.</p>
<p><a href="/login">Log in</a> · <a href="/register">Register</a> · <a href="/docs">API docs</a></p>
<p id="first-user" hidden>No operator exists yet: the first to register becomes admin.</p>
</main>""",
    ),
    (
        "/login",
        "Log in",
        "login.js",
        """
<main class="auth card"><h1>Log in</h1>
<form id="login-form"><label for="email">Email</label><input id="email" type="email"
required autocomplete="username"><label for="password">Password</label><input id="password"
type="password" required autocomplete="current-password"><p><button id="login-submit"
type="submit">Log in</button></p><p id="login-error" class="error" role="alert"></p></form>
<p>No account? <a href="/register">Register</a></p></main>""",
    ),
    (
        "/register",
        "Register",
        "register.js",
        """
<main class="auth card"><h1>Register</h1><p id="register-note"></p>
<form id="register-form"><label for="display-name">Name</label><input id="display-name"
required maxlength="80"><label for="email">Email</label><input id="email" type="email"
required autocomplete="username"><label for="password">Password (10 characters or more)</label>
<input id="password" type="password" required minlength="10" autocomplete="new-password">
<label for="invite">Invite code</label><input id="invite" autocomplete="off">
<p><button id="register-submit" type="submit">Register</button></p>
<p id="register-error" class="error" role="alert"></p></form>
<p>Already registered? <a href="/login">Log in</a></p></main>""",
    ),
    (
        "/dashboard",
        "Overview",
        "dashboard.js",
        """
<nav id="nav"></nav><main><h1>Overview</h1><div id="health" class="card"></div>
<div id="figures" class="grid"></div><div class="card"><h2>Messages per minute</h2>
<table id="per-minute"></table></div><div class="card"><h2>WhatsApp account</h2>
<p class="empty" id="account-empty">Template, quality and opt-out notices from Meta appear here.
</p><table id="account-events"></table></div></main>""",
    ),
    (
        "/dashboard/conversations",
        "Conversations",
        "conversations.js",
        """
<nav id="nav"></nav><main class="inbox"><section class="list"><div class="filters">
<select id="filter-state"><option value="">All states</option><option value="bot">Bot</option>
<option value="human">Human</option><option value="closed">Closed</option></select>
<select id="filter-assigned"><option value="">Anyone</option><option value="me">Mine</option>
<option value="none">Unassigned</option></select><input id="filter-label" placeholder="Label">
<input id="filter-q" placeholder="Search"></div><ul id="conversation-list"></ul>
<p id="list-more" hidden><button class="secondary" id="load-more">More</button></p></section>
<section class="thread" id="thread"><div class="empty">Pick a conversation.</div></section>
</main>""",
    ),
    (
        "/dashboard/settings",
        "Settings",
        "settings.js",
        """
<nav id="nav"></nav><main><h1>Settings</h1><p id="settings-note"></p>
<div id="settings"></div><div class="card"><h2>Invite an operator</h2>
<form id="invite-form"><input id="invite-email" type="email" placeholder="email (optional)">
<select id="invite-role"><option value="agent">agent</option><option value="admin">admin</option>
</select> <button type="submit">Create invite</button></form><p id="invite-result"></p></div>
<div class="card"><h2>Canned responses</h2><ul id="canned-list"></ul>
<form id="canned-form"><input id="canned-title" placeholder="Title" required maxlength="80">
<textarea id="canned-body" placeholder="Text" required></textarea>
<button type="submit">Add</button></form><p id="canned-error" class="error"></p></div>
<div class="card"><h2>Diagnostics</h2><button class="secondary" id="diag-db">Test database
</button> <button class="secondary" id="diag-llm">Test LLM</button>
<button class="secondary" id="diag-instructions">Test webhook instructions</button>
<pre id="diag-output"></pre></div></main>""",
    ),
    (
        "/dashboard/webhooks",
        "Webhook log",
        "webhooks.js",
        """
<nav id="nav"></nav><main><h1>Webhook log</h1><p><select id="filter-outcome">
<option value="">All outcomes</option><option>stored</option><option>duplicate</option>
<option>partial</option><option>bad_signature</option><option>malformed</option><option>rejected</option>
<option>too_large</option><option>unavailable</option></select></p>
<table><thead><tr><th>Time</th><th>Source</th><th>Type</th><th>Outcome</th><th>HTTP</th>
<th>Messages</th><th>Statuses</th><th>Latency</th><th>Detail</th></tr></thead>
<tbody id="webhook-rows"></tbody></table><div class="card" id="unparsed-card" hidden>
<h2>Unparsed parts</h2><table><thead><tr><th>Time</th><th>Part</th><th>Error</th><th>Raw</th>
</tr></thead><tbody id="unparsed-rows"></tbody></table></div></main>""",
    ),
    (
        "/docs",
        "API docs",
        "docs.js",
        """
<nav id="nav"></nav><main><h1>Operator REST API</h1><p>The OpenAPI 3 document is at
<a href="/api/openapi.json">/api/openapi.json</a>; send the access token from
<code>POST /api/auth/login</code> as <code>Authorization: Bearer …</code>.</p>
<div id="spec"><p class="empty">Log in to read the API documentation.</p></div></main>""",
    ),
)


def _html(title: str, script: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · wa-support</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script><script src="/static/{script}" defer></script>
</head><body>{body}</body></html>"""


def _handler(html: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text=html,
            content_type="text/html",
            headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                     "Referrer-Policy": "same-origin", "Cache-Control": "no-store"},
        )  # fmt: skip

    return page


def setup(app: web.Application) -> None:
    for path, title, script, body in _PAGES:
        app.router.add_get(path, _handler(_html(title, script, body)))
    app.router.add_static("/static", STATIC_DIR, append_version=False)


PAGE_PATHS = tuple(path for path, *_ in _PAGES)
