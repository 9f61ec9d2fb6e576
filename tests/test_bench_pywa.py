"""The pywa comparison app of the ingest benchmark does the work it is compared on.

bench/pywa_app.py is only a fair yardstick if pywa itself refuses forged webhooks and parses
every genuine one into its types: these start it as the benchmark does and check both, with
the very bodies the benchmark sends it.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.signature import sign
from tests.fixtures_whatsapp import status_delivered
from tests.support import envelope, text_message

if not all(importlib.util.find_spec(m) for m in ("pywa", "pywa_async", "fastapi", "uvicorn")):
    pytest.skip(
        "pywa, fastapi or uvicorn not installed (the [bench] extra)", allow_module_level=True
    )

from bench.ingest import append_bsuid_records
from bench.make_bodies import SECRET, phone_pool

ROOT = Path(__file__).resolve().parents[1]
PATH = "/api/webhooks/whatsapp-business"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["async", "sync"])
def pywa_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("pywa") / "pywa.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "bench/pywa_app.py", "--port", str(port), "--secret", SECRET]
            + (["--sync"] if request.param == "sync" else []),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                httpx.get(base + "/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _parsed(base: str, *, at_least: dict[str, int] | None = None) -> dict[str, Any]:
    """pywa parses in a background task after answering: poll until the counts arrive."""
    deadline = time.monotonic() + 10
    while True:
        seen: dict[str, Any] = httpx.get(base + "/bench/parsed").json()
        if not at_least or all(seen[k] >= v for k, v in at_least.items()):
            return seen
        if time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def _post(base: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return httpx.post(base + PATH, content=body, headers=headers)


def _bench_records(tmp_path: Path, count: int) -> list[tuple[str, bytes]]:
    path = tmp_path / "bodies.txt"
    append_bsuid_records(path, 0, count, tag="t35t", phones=phone_pool(10, seed=1))
    lines = path.read_bytes().splitlines()
    return [(sig.decode(), body) for sig, body in (line.split(b" ", 1) for line in lines)]


def test_forged_or_unsigned_webhooks_are_refused_and_never_parsed(
    pywa_app: str, tmp_path: Path
) -> None:
    before = _parsed(pywa_app)
    [(_, body)] = _bench_records(tmp_path, 1)

    forged = _post(pywa_app, body, sign(body, "not-the-app-secret"))
    unsigned = _post(pywa_app, body, None)
    tampered = _post(pywa_app, body.replace(b"Hello", b"Hallo"), sign(body, SECRET))

    assert forged.status_code == 403
    assert unsigned.status_code >= 400
    assert tampered.status_code == 403
    time.sleep(0.5)  # a parse, were there one, would run right after the answer
    assert _parsed(pywa_app)["messages"] == before["messages"]


def test_every_benchmark_body_is_answered_200_and_parsed_into_a_message(
    pywa_app: str, tmp_path: Path
) -> None:
    before = _parsed(pywa_app)
    records = _bench_records(tmp_path, 20)

    answers = [_post(pywa_app, body, sig) for sig, body in records]

    assert [a.status_code for a in answers] == [200] * len(records)
    seen = _parsed(pywa_app, at_least={"messages": before["messages"] + len(records)})
    assert seen["messages"] == before["messages"] + len(records)
    last = orjson.loads(records[-1][1])["entry"][0]["changes"][0]["value"]
    assert seen["last_message"] == {
        "class": "Message",
        "id": last["messages"][0]["id"],
        "from": last["messages"][0]["from"],
        "name": "Bench Customer",
        "text": last["messages"][0]["text"]["body"],
        "type": "text",
    }


def test_a_signed_status_webhook_is_parsed_into_a_message_status(pywa_app: str) -> None:
    phone = "491701234567"
    before = _parsed(pywa_app)
    value_status = status_delivered("wamid.BENCHOUT1", phone)
    payload = envelope(statuses=[value_status])
    # Meta names the recipient in `contacts` (with its business-scoped id); pywa needs it.
    payload["entry"][0]["changes"][0]["value"]["contacts"] = [
        {"wa_id": phone, "user_id": f"DE.{int(phone):020d}"}
    ]
    body = orjson.dumps(payload)

    answer = _post(pywa_app, body, sign(body, SECRET))

    assert answer.status_code == 200
    seen = _parsed(pywa_app, at_least={"statuses": before["statuses"] + 1})
    assert seen["statuses"] == before["statuses"] + 1
    assert seen["last_status"] == {
        "class": "MessageStatus",
        "id": "wamid.BENCHOUT1",
        "status": "delivered",
    }


def test_a_duplicate_is_answered_but_parsed_once(pywa_app: str) -> None:
    """Why the benchmark gives pywa fresh bodies: a resent body costs pywa no parse."""
    before = _parsed(pywa_app)
    phone = "491709999999"
    payload = envelope([text_message(phone, "twice", wamid="wamid.BENCHDUP1")])
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = "DE.1"
    body = orjson.dumps(payload)

    first = _post(pywa_app, body, sign(body, SECRET))
    _parsed(pywa_app, at_least={"messages": before["messages"] + 1})
    second = _post(pywa_app, body, sign(body, SECRET))
    time.sleep(0.5)

    assert (first.status_code, second.status_code) == (200, 200)
    assert _parsed(pywa_app)["messages"] == before["messages"] + 1
