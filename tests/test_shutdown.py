"""Graceful shutdown of `wa-support serve` (DESIGN.md §3): 503 while draining, bounded,
nothing left running, and after a restart every acknowledged message has one reply."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil
import pytest_asyncio

from actors.runtime import start_actors
from config import Settings
from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from fakes.server import FakeServer
from gateway.app import create_app
from gateway.draining import DRAINING
from tests.inbox_rows import store_inbound
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message
from tests.test_cli import CLI, _free_port

APP_SECRET = "shutdown-app-secret"
DRAIN_SECONDS = 10.0
# Past the drain: Ray's own shutdown and the HTTP server's close.
EXIT_MARGIN_SECONDS = 20.0


async def test_a_draining_gateway_answers_webhooks_503_and_stores_nothing(
    settings: Settings, database_url: str, db: asyncpg.Pool
) -> None:
    router_calls: list[object] = []

    class Recorder:
        def submit(self, items: object) -> None:
            router_calls.append(items)

    app = create_app(settings, Recorder(), database_url=database_url)
    app[DRAINING].begin()
    phone = new_phone()
    async with FakeServer(app) as server:
        client = WebhookClient(server.url, settings.app_secret())
        try:
            response = await client.post(envelope([text_message(phone, "are you there?")]))
        finally:
            await client.close()
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    stored = await db.fetchval(
        "SELECT count(*) FROM conversations WHERE customer_phone = $1", phone
    )
    assert stored == 0
    assert router_calls == []


async def test_a_closing_shard_takes_nothing_more_and_waits_for_its_work_at_most_the_timeout(
    settings: Settings,
    ray_cluster: None,
    database_url: str,
    redis_url: str,
    db: asyncpg.Pool,
    openrouter: OpenRouterFake,
) -> None:
    own = settings.model_copy(update={"shard_count": 1})
    actors = start_actors(
        own, database_url=database_url, redis_url=redis_url, prefix=f"sd{uuid.uuid4().hex[:6]}-"
    )
    [shard] = actors.shards
    try:
        await actors.ping()

        async def replayed() -> bool:
            return not (await shard.stats.remote())["replaying"]

        await eventually(replayed, within=30)
        openrouter.set_latency(30.0)  # far longer than the close may wait
        phone = new_phone()
        items = await store_inbound(db, [(phone, "text", "m1"), (phone, "text", "m2")])
        assert await shard.deliver.remote(items) == 2
        await asyncio.sleep(0.5)  # m1 is with the LLM, m2 waits

        started = time.monotonic()
        outcome = await shard.close.remote(1.0)
        assert time.monotonic() - started < 3.0
        assert outcome["in_hand"] >= 1 and outcome["left_queued"] >= 1
        assert await shard.deliver.remote(items) == 0
        unprocessed = await db.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::bigint[]) AND processed_at IS NULL",
            [i.message_id for i in items],
        )
        assert unprocessed == 2  # both stay in the inbox for the next start's replay
    finally:
        actors.kill()


@pytest_asyncio.fixture
async def own_database(database_url: str) -> AsyncIterator[str]:
    """A database of its own for the serve processes, which migrate it themselves."""
    name = f"wa_test_sd_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.close()


def _env(
    tmp_path: Path, port: int, database_url: str, settings: Settings, graph: GraphApiFake,
    openrouter: OpenRouterFake,
) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "OPENROUTER_"))}
    env.pop("RAY_ADDRESS", None)
    env.pop("APP_ENV", None)
    assert settings.whatsapp_access_token is not None
    assert settings.openrouter_api_key is not None
    env.update(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.redis_url or "",
            "REDIS_KEY_PREFIX": f"{settings.redis_key_prefix}sd-{uuid.uuid4().hex[:6]}:",
            "RAY_NAMESPACE": f"wa-sd-{uuid.uuid4().hex[:8]}",
            "RAY_NUM_CPUS": "1",
            "SHARD_COUNT": "1",
            "WHATSAPP_ACCESS_TOKEN": settings.whatsapp_access_token.get_secret_value(),
            "WHATSAPP_PHONE_NUMBER_ID": settings.whatsapp_phone_number_id or "",
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": "shutdown-verify",
            "WHATSAPP_GRAPH_BASE_URL": graph.base_url,  # type: ignore[attr-defined]
            "WHATSAPP_MARK_READ": "false",
            "OPENROUTER_API_KEY": settings.openrouter_api_key.get_secret_value(),
            "OPENROUTER_BASE_URL": openrouter.base_url,  # type: ignore[attr-defined]
            "OPENROUTER_PRIMARY_MODEL": settings.openrouter_primary_model,
            "OPENROUTER_FALLBACK_MODEL": ",".join(settings.openrouter_fallback_model),
            "LLM_TIMEOUT_SECONDS": "30",
            "FLOWS_PATH": "none",
            "PAIR_INTERVAL_SECONDS": "0",
            "DELIVERY_MESSAGES_PER_SECOND": "1000",
            "ABUSE_MESSAGES_PER_WINDOW": "100000",
            "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        }
    )
    return env


class Serve:
    """One `wa-support serve` subprocess, read until its banner."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [str(CLI), "serve"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.children: list[psutil.Process] = []
        self.output = ""

    async def started(self) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 120
        while f"listening on http://127.0.0.1:{self.port}" not in self.output:
            assert time.monotonic() < deadline, f"serve did not start:\n{self.output}"
            line = await asyncio.to_thread(self.proc.stdout.readline)
            assert line, f"serve exited early:\n{self.output}"
            self.output += line
        self.children = psutil.Process(self.proc.pid).children(recursive=True)

    async def stop(self, sig: signal.Signals, within: float) -> float:
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            await asyncio.to_thread(self.proc.wait, within)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return time.monotonic() - started

    def kill(self) -> None:
        for p in [*self.children, psutil.Process(self.proc.pid)]:
            if p.is_running():
                p.kill()

    def orphans(self) -> list[psutil.Process]:
        return [p for p in self.children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def test_sigterm_drains_with_503s_within_its_bound_and_a_restart_answers_the_rest(
    tmp_path: Path,
    settings: Settings,
    own_database: str,
    graph: GraphApiFake,
    openrouter: OpenRouterFake,
) -> None:
    port = _free_port()
    env = _env(tmp_path, port, own_database, settings, graph, openrouter)
    first = Serve(tmp_path, env, port)
    client = WebhookClient(f"http://127.0.0.1:{port}", APP_SECRET)
    try:
        await first.started()
        # Each first message is with the slow LLM when SIGTERM comes, each second waits.
        openrouter.set_latency(4.0)
        phones = [new_phone() for _ in range(6)]
        acked: dict[str, list[str]] = {p: [] for p in phones}
        for k in (1, 2):
            for phone in phones:
                response = await client.post(envelope([text_message(phone, f"m{k}")]))
                assert response.status_code == 200
                acked[phone].append(f"m{k}")
        await asyncio.sleep(1.0)

        stopping = asyncio.create_task(first.stop(signal.SIGTERM, DRAIN_SECONDS + 60))
        statuses: list[int] = []
        late_phones: list[str] = []
        while not stopping.done():
            phone = new_phone()
            try:
                response = await client.post(
                    envelope([text_message(phone, "during the drain")]), timeout=2
                )
            except httpx.TransportError:
                break  # the HTTP server closes last
            statuses.append(response.status_code)
            if response.status_code == 200:  # raced the signal: acknowledged, so answered
                acked[phone] = ["during the drain"]
                late_phones.append(phone)
            await asyncio.sleep(0.1)
        elapsed = await stopping
    finally:
        await client.close()
        if first.proc.poll() is None:
            first.kill()

    print(f"drain: exited {elapsed:.1f}s after SIGTERM; webhook answers {statuses}")
    assert first.proc.returncode == 0, first.output
    assert 503 in statuses
    assert 200 not in statuses[statuses.index(503) :]
    assert elapsed < DRAIN_SECONDS + EXIT_MARGIN_SECONDS, elapsed
    await asyncio.sleep(1.0)
    assert first.orphans() == [], [p.cmdline()[:3] for p in first.orphans()]
    # The messages in hand finished during the drain; the waiting ones were left in the inbox.
    for phone in phones:
        assert [m.text for m in graph.messages_to(phone)] == ["Echo: m1"], phone

    openrouter.set_latency(0.0)
    second = Serve(tmp_path, env, port)
    try:
        await second.started()

        def answered() -> bool:
            return all(len(graph.messages_to(p)) >= len(acked[p]) for p in acked)

        deadline = time.monotonic() + 60
        while not answered():
            assert time.monotonic() < deadline, {p: graph.messages_to(p) for p in acked}
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # a second reply would show by now
        for phone, texts in acked.items():
            assert [m.text for m in graph.messages_to(phone)] == [f"Echo: {t}" for t in texts]
    finally:
        if second.proc.poll() is None:
            await second.stop(signal.SIGINT, DRAIN_SECONDS + 60)
    assert second.proc.returncode == 0, second.output
