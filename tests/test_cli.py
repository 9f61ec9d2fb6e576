"""`wa-support serve` as a newcomer runs it: embedded defaults, a signed webhook, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.processes import interrupt, left_running
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message

CLI = Path(sys.executable).with_name("wa-support")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "OPENROUTER_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "APP_ENV"):
        env.pop(name, None)
    env.update({"DATA_DIR": str(tmp_path / "data"), "PORT": str(port), "LOG_LEVEL": "WARNING"})
    return env


async def test_serve_on_embedded_defaults_answers_a_signed_webhook_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    port = _free_port()
    # A Popen handle, so the test reads the banner line by line and sends Ctrl-C itself.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [str(CLI), "serve"],
        cwd=tmp_path,  # no .env from the repository
        env=_clean_env(tmp_path, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        banner = ""
        while f"listening on http://127.0.0.1:{port}" not in banner:
            assert time.monotonic() < deadline, f"serve did not start:\n{banner}"
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, f"serve exited early:\n{banner}"
            banner += line
        children = psutil.Process(proc.pid).children(recursive=True)

        base = f"http://127.0.0.1:{port}"
        phone = new_phone()
        client = WebhookClient(base, "dev-app-secret")  # the documented development secret
        try:
            response = await client.post(envelope([text_message(phone, "When are you open?")]))
            assert response.status_code == 200

            async def answered() -> bool:
                sent = (
                    await client.http.get("/sandbox/_fake/messages", params={"to": phone})
                ).json()
                return bool(sent)

            await eventually(answered, within=60)
            sent = (await client.http.get("/sandbox/_fake/messages", params={"to": phone})).json()
            assert len(sent) == 1
            assert "Monday to Friday" in sent[0]["text"]  # the shipped FAQ's opening hours
        finally:
            await client.close()
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/health")).status_code == 200
    finally:
        await interrupt(proc)

    assert proc.returncode == 0
    left = await left_running(children, tmp_path / "data")
    assert left == [], f"left running after Ctrl-C: {left}"


def test_several_gateway_workers_are_refused_in_sandbox_mode_with_the_reason(
    tmp_path: Path,
) -> None:
    # The sandbox records replies inside one process; N processes behind one port would
    # scatter them, so the command says why instead of starting something half-working.
    result = subprocess.run(
        [str(CLI), "serve", "--workers", "2"],
        env=_clean_env(tmp_path, _free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers needs a real provider" in result.stderr
    assert not (tmp_path / "data").exists(), "it started embedded servers before refusing"


def test_the_banner_names_each_part_with_its_address_provider_and_responder() -> None:
    from cli.banner import parts
    from cli.servers import Servers
    from config import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        msg91_auth_key="key",
        msg91_sender_id="919800000000",
        openrouter_api_key="sk-test",
        openrouter_primary_model="openai/gpt-4o-mini",
        openrouter_fallback_model=["anthropic/claude-3.5-haiku"],
    )
    servers = Servers("postgresql://app:secret@db.internal:5432/wa", "redis://cache:6379/0", None)
    shown = dict(parts(settings, servers))
    assert shown["postgres"] == "external, db.internal:5432/wa"  # no user, no password
    assert shown["redis"] == "external, cache:6379/0"
    assert shown["delivery"].startswith("MSG91, number 919800000000")
    assert shown["responder"].startswith(
        "LLM openai/gpt-4o-mini (fallbacks: anthropic/claude-3.5-haiku)"
    )
    assert shown["ray"].startswith("local")
