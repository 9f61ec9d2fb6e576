"""After login the page goes to `next` only when it is a page of this site.

The page's own script runs in Node's `vm` with the WHATWG URL parser browsers share, so
"/\\evil.example" is read as a browser reads it. Without Node the test is skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

LOGIN_JS = Path(__file__).resolve().parents[1] / "gateway/web/static/login.js"
ORIGIN = "https://support.example"

# Loads login.js with the browser objects it touches; its refresh succeeds, so it goes to
# `next` at once. Prints where the browser would end up.
HARNESS = """
const vm = require("vm");
const [source, next, origin] = [process.argv[1], process.argv[2], process.argv[3]];
const location = {origin, href: ""};
const context = vm.createContext({
  URL, location,
  WA: {param: () => next, api: async () => ({}), errorText: String},
  fetch: () => Promise.resolve({ok: true}),
  document: {getElementById: () => ({addEventListener() {}, textContent: ""})},
});
vm.runInContext(require("fs").readFileSync(source, "utf8"), context);
setTimeout(() => console.log(new URL(location.href, origin).href), 0);
"""


def _lands_on(next_value: str) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the page script cannot run outside a browser")
    done = subprocess.run(
        [node, "-e", HARNESS, str(LOGIN_JS), next_value, ORIGIN],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    "next_value",
    [
        "/\\evil.example",
        "/\\/evil.example",
        "\\\\evil.example",
        "//evil.example",
        "https://evil.example/dashboard",
        "/\t/evil.example",
        "javascript:alert(1)",
    ],
)
def test_next_pointing_at_another_site_lands_on_the_dashboard(next_value: str) -> None:
    assert _lands_on(next_value) == f"{ORIGIN}/dashboard", json.dumps(next_value)


@pytest.mark.parametrize(
    "next_value", ["/dashboard/conversations?state=human", "/dashboard/settings#flows"]
)
def test_next_on_this_site_is_followed(next_value: str) -> None:
    assert _lands_on(next_value) == ORIGIN + next_value
