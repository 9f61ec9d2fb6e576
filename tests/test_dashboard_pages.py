"""The pages: served without a CDN, locked down by their headers, and written so that
customer text can only ever become text."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from gateway.web import PAGE_PATHS, STATIC_DIR
from tests.api_fixtures import ADMIN_EMAIL, ADMIN_PASSWORD, Operator


async def _logged_in(api_url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=api_url)
    await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    return client


async def test_every_page_loads_only_its_own_assets_under_a_strict_csp(
    api_url: str, admin: Operator
) -> None:
    client = await _logged_in(api_url)
    try:
        assert set(PAGE_PATHS) >= {
            "/",
            "/login",
            "/register",
            "/dashboard",
            "/dashboard/conversations",
            "/dashboard/settings",
            "/dashboard/webhooks",
        }
        for path in PAGE_PATHS:
            response = await client.get(path, follow_redirects=False)
            assert response.status_code == 200, path
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            html = response.text
            # No CDN, no inline script: every script and stylesheet is ours.
            sources = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert all(s.startswith("/") or s == "data:," for s in sources), (path, sources)
            assert re.search(r"<script>(?!</script>)", html) is None
            for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
                assert (await client.get(asset)).status_code == 200, asset
    finally:
        await client.aclose()


def test_page_scripts_never_parse_strings_as_html() -> None:
    # The escaping rule, enforced on the source: text goes in through text nodes only.
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(")
    for script in Path(STATIC_DIR).glob("*.js"):
        assert forbidden.search(script.read_text()) is None, script.name
