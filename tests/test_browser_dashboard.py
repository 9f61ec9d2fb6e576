"""A new operator in a real headless Chromium: register, log in, watch a customer message
arrive live, take over, reply, and see the reply delivered, with customer HTML shown as
text. Debian's chromium and chromium-driver are installed by this fixture when missing
(as root); without any way to get them the test is skipped, saying why."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from fakes.graph_api import GraphApiFake
from tests.api_fixtures import Operator
from tests.conftest import APP_SECRET
from tests.support import WebhookClient, envelope, new_phone, text_message

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1366,900",
)
T = TypeVar("T")


def _install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver; return why not, or None when done."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "chromium/chromium-driver missing and cannot be installed (not root or no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
    ):
        result = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            return f"{' '.join(step)} failed: {result.stderr[-500:]}"
    return None if CHROMIUM.exists() and CHROMEDRIVER.exists() else "install left no chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    why = _install_chromium()
    if why is not None:
        pytest.skip(f"no Chromium for the browser test: {why}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wa-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # The driver is given explicitly, so Selenium Manager never tries to download one.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def on_browser(work: Callable[[], T]) -> T:
    # Selenium blocks; the gateway under test runs on this event loop, so drive from a thread.
    return await asyncio.to_thread(work)


def wait_for(driver: Any, condition: Callable[[Any], Any], within: float = 20.0) -> Any:
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # The pages re-render on live events, so an element can go stale between two looks.
    return WebDriverWait(
        driver,
        within,
        poll_frequency=0.1,
        ignored_exceptions=(
            NoSuchElementException,
            StaleElementReferenceException,
            ElementNotInteractableException,
        ),
    ).until(condition)


async def test_a_new_operator_takes_over_a_live_conversation_and_replies(
    browser: Any, api_url: str, admin: Operator, graph: GraphApiFake
) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    async with httpx.AsyncClient(base_url=api_url) as client:
        invite = (
            await client.post("/api/auth/invites", json={"role": "agent"}, headers=admin.headers)
        ).json()
    email, password = f"new-{uuid.uuid4().hex[:6]}@example.test", "a long enough password"

    def register_then_log_in() -> None:
        d.get(f"{api_url}{invite['register_url']}")
        d.find_element(By.ID, "display-name").send_keys("Nora Newcomer")
        d.find_element(By.ID, "email").send_keys(email)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.ID, "register-submit").click()
        wait_for(d, lambda d: d.current_url.endswith("/dashboard"))
        wait_for(d, lambda d: d.find_element(By.ID, "logout")).click()
        wait_for(d, lambda d: "/login" in d.current_url)
        d.find_element(By.ID, "email").send_keys(email)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.ID, "login-submit").click()
        wait_for(d, lambda d: d.current_url.endswith("/dashboard"))
        assert "Nora Newcomer" in wait_for(d, lambda d: d.find_element(By.ID, "who")).text
        d.get(f"{api_url}/dashboard/conversations")
        wait_for(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live"))

    await on_browser(register_then_log_in)

    # A customer writes, with HTML in the name and the text: it must show as text.
    phone = new_phone()
    hostile = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> Hi there'
    customer = WebhookClient(api_url, APP_SECRET)
    try:
        response = await customer.post(envelope([text_message(phone, hostile)], name="<b>Eve</b>"))
        assert response.status_code == 200

        def customer_item(d: Any) -> Any:
            items = d.find_elements(By.CSS_SELECTOR, "#conversation-list li")
            return next((li for li in items if phone in li.text), None)

        def click(d: Any, element_id: str) -> None:
            # Found afresh on each try: a live update may have just re-rendered it.
            wait_for(d, lambda d: d.find_element(By.ID, element_id).click() or True)

        def appears_live_and_escaped() -> None:
            def name_shown_as_text(d: Any) -> bool:
                item = customer_item(d)
                return (
                    item is not None
                    and item.find_element(By.CSS_SELECTOR, ".customer-name").text == "<b>Eve</b>"
                    and item.find_elements(By.TAG_NAME, "b") == []
                )

            wait_for(d, name_shown_as_text)  # arrived live: the page was never reloaded
            wait_for(d, lambda d: customer_item(d).click() or True)
            wait_for(
                d,
                lambda d: d.find_element(By.CSS_SELECTOR, ".message.inbound .text").text == hostile,
            )
            assert d.find_elements(By.CSS_SELECTOR, "#messages img, #messages script") == []
            assert d.execute_script("return window.__xss") is None
            click(d, "take-over")
            wait_for(d, lambda d: d.find_element(By.ID, "thread-state").text == "human")
            wait_for(d, lambda d: d.find_element(By.ID, "return-to-bot"))

            def type_and_send(d: Any) -> bool:
                box = d.find_element(By.ID, "reply-text")
                box.clear()
                box.send_keys("Hello Eve, Nora here.")
                d.find_element(By.ID, "send-reply").click()
                return True

            wait_for(d, type_and_send)
            wait_for(
                d,
                lambda d: any(
                    "Hello Eve, Nora here." in m.text
                    and m.find_element(By.CSS_SELECTOR, ".status").get_attribute("data-status")
                    == "sent"
                    for m in d.find_elements(By.CSS_SELECTOR, ".message.outbound")
                ),
            )

        await on_browser(appears_live_and_escaped)
        sent = [m for m in graph.messages_to(phone) if m.text == "Hello Eve, Nora here."]
        assert len(sent) == 1  # delivered to WhatsApp (the Graph fake) exactly once

        # WhatsApp reports delivery; the page follows without a reload.
        status = {
            "id": sent[0].wamid,
            "status": "delivered",
            "timestamp": str(int(time.time())),
            "recipient_id": phone,
        }
        assert (await customer.post(envelope(statuses=[status]))).status_code == 200

        def delivered_and_screenshot() -> None:
            wait_for(
                d,
                lambda d: any(
                    "Hello Eve, Nora here." in m.text
                    and m.find_element(By.CSS_SELECTOR, ".status").get_attribute("data-status")
                    == "delivered"
                    for m in d.find_elements(By.CSS_SELECTOR, ".message.outbound")
                ),
            )
            assert d.execute_script("return window.__xss") is None
            ARTIFACTS.mkdir(exist_ok=True)
            assert d.save_screenshot(str(ARTIFACTS / "dashboard-conversation.png"))

        await on_browser(delivered_and_screenshot)
    finally:
        await customer.close()
    assert (ARTIFACTS / "dashboard-conversation.png").stat().st_size > 10_000


async def test_customer_html_is_shown_as_text_and_never_runs(
    browser: Any, api_url: str, admin: Operator
) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    phone = new_phone()
    payloads = [
        "<script>window.__xss='script'</script>",
        "<img src=x onerror=\"window.__xss='img'\">",
        '<a href="javascript:window.__xss=1">click</a> & <b>bold</b>',
    ]
    customer = WebhookClient(api_url, APP_SECRET)
    try:
        for text in payloads:
            await customer.post(envelope([text_message(phone, text)], name='<i onmouseover="x">'))
    finally:
        await customer.close()

    def log_in_and_open() -> None:
        # Start from no session, whatever ran before: log out as the page's button does.
        d.get(f"{api_url}/")
        d.execute_async_script(
            "const done = arguments[0];"
            "fetch('/api/auth/logout', {method: 'POST', headers: {'Content-Type':"
            " 'application/json'}, body: '{}'}).then(() => done(), () => done());"
        )
        d.get(f"{api_url}/login")
        wait_for(d, lambda d: d.find_element(By.ID, "email")).send_keys(admin.email)
        d.find_element(By.ID, "password").send_keys(admin.password)
        d.find_element(By.ID, "login-submit").click()
        wait_for(d, lambda d: d.current_url.endswith("/dashboard"))
        d.get(f"{api_url}/dashboard/conversations")

        def opened(d: Any) -> bool:
            items = d.find_elements(By.CSS_SELECTOR, "#conversation-list li")
            item = next((li for li in items if phone in li.text), None)
            if item is None:
                return False
            item.click()
            return True

        wait_for(d, opened)
        wait_for(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".message.inbound")) == 3)
        shown = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".message.inbound .text")]
        assert shown == payloads
        assert d.find_element(By.ID, "thread-title").text == '<i onmouseover="x">'
        injected = "#messages script, #messages img, #messages a, #messages b, #thread i"
        assert d.find_elements(By.CSS_SELECTOR, injected) == []
        assert d.execute_script("return window.__xss") is None

    await on_browser(log_in_and_open)
