"""One active set of actors per cluster: another code or SHARD_COUNT is refused by name."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import ray

from actors import actor_set
from actors.actor_set import ActorSetMismatch
from actors.client import ActorClient
from actors.conversation.router import ShardRouter
from actors.runtime import retire_actors, start_actors
from config import Settings
from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from fakes.server import FakeServer
from gateway.app import create_app
from tests.conftest import APP_SECRET
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message
from tests.test_cli import CLI, _free_port


@pytest.fixture
def own(settings: Settings, ray_cluster: None) -> Iterator[Settings]:
    """Settings in a Ray namespace of their own; its actors and records removed at the end."""
    s = settings.model_copy(
        update={"ray_namespace": f"set-{uuid.uuid4().hex[:8]}", "shard_count": 2}
    )
    yield s
    active = actor_set.running(s)
    if active is not None:
        retire_actors(s, active.version)


def _ids(handles: list[object]) -> list[str]:
    return [h._actor_id.hex() for h in handles]  # type: ignore[attr-defined]


async def test_a_gateway_with_another_shard_count_is_refused_and_names_the_running_set(
    own: Settings, database_url: str, redis_url: str
) -> None:
    first = start_actors(own, database_url=database_url, redis_url=redis_url)
    await first.ping()
    with pytest.raises(ActorSetMismatch) as refused:
        start_actors(
            own.model_copy(update={"shard_count": 3}),
            database_url=database_url,
            redis_url=redis_url,
        )
    message = str(refused.value)
    assert "2 shards" in message and "SHARD_COUNT=3" in message
    assert "wa-support reshard --shards 3" in message
    # The running set is untouched, and the same code and count attach to the same actors.
    again = start_actors(own, database_url=database_url, redis_url=redis_url)
    assert _ids(list(again.shards)) == _ids(list(first.shards))
    assert len(again.shards) == 2
    await again.ping()


async def test_a_gateway_with_other_code_is_refused_even_with_the_same_shard_count(
    own: Settings, database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = start_actors(own, database_url=database_url, redis_url=redis_url)
    await kept.ping()  # (held: a local Ray's actors die with their last handle)
    running = actor_set.running(own)
    assert running is not None and running.code == actor_set.code_version()
    monkeypatch.setattr(actor_set, "code_version", lambda: "9.9.9+wire.0123456789")
    with pytest.raises(
        ActorSetMismatch, match=re.escape(f"runs another set of actors: code {running.code}")
    ):
        start_actors(own, database_url=database_url, redis_url=redis_url)
    # Nothing of the other version was created beside the running set.
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == own.ray_namespace
    ]
    assert names and all(n.startswith(running.version + ":") for n in names)


def test_serve_with_another_shard_count_exits_2_naming_the_running_set(
    own: Settings, database_url: str, redis_url: str
) -> None:
    start_actors(own, database_url=database_url, redis_url=redis_url)
    env = {
        "PATH": "/usr/bin:/bin",
        "RAY_ADDRESS": str(ray.get_runtime_context().gcs_address),
        "RAY_AUTH_MODE": "disabled",
        "RAY_NAMESPACE": own.ray_namespace,
        "SHARD_COUNT": "3",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PORT": str(_free_port()),
        "LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [str(CLI), "serve"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the Ray cluster runs another set of actors" in result.stderr
    assert "2 shards" in result.stderr
    assert "Traceback" not in result.stderr


def _cli_env(own: Settings, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "RAY_ADDRESS": str(ray.get_runtime_context().gcs_address),
        "RAY_AUTH_MODE": "disabled",
        "RAY_NAMESPACE": own.ray_namespace,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def _reshard(env: dict[str, str], shards: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "reshard", "--shards", str(shards)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _gateway(
    own: Settings, actors: ActorClient, database_url: str
) -> AsyncIterator[WebhookClient]:
    router = ShardRouter(actors.shards, max_batch=100, max_delay=0.003, keepalive=0.5)
    app = create_app(own, router, database_url=database_url)
    async with FakeServer(app) as server:
        router.start()
        client = WebhookClient(server.url, APP_SECRET)
        try:
            yield client
        finally:
            await client.close()
            await router.stop()


async def test_reshard_moves_every_conversation_to_the_new_shards_losing_and_reordering_nothing(
    own: Settings,
    database_url: str,
    redis_url: str,
    graph: GraphApiFake,
    openrouter: OpenRouterFake,
) -> None:
    phones = [new_phone() for _ in range(6)]
    # The LLM is slowed below: its timeout (a fallback reply) must not cut in.
    own = own.model_copy(update={"llm_timeout_seconds": 30.0})
    before = start_actors(own, database_url=database_url, redis_url=redis_url)
    await before.ping()
    old_version = actor_set.wanted(own).version
    async with _gateway(own, before, database_url) as webhooks:
        for phone in phones:
            assert (await webhooks.post(envelope([text_message(phone, "one")]))).status_code == 200
        await eventually(lambda: _all_have(graph, phones, 1), within=60)
        # A slow LLM: while reshard runs, one message per phone is in hand, one waits.
        openrouter.set_latency(8.0)
        for phone in phones:
            for text in ("two", "three"):
                response = await webhooks.post(envelope([text_message(phone, text)]))
                assert response.status_code == 200
        await asyncio.sleep(0.5)

    moved = await asyncio.to_thread(_reshard, _cli_env(own, database_url, redis_url), 3)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert "the active set is now" in moved.stdout and "3 shards" in moved.stdout
    waiting = sum(int(n) for n in re.findall(r"(\d+) waiting messages left", moved.stdout))
    assert waiting > 0, moved.stdout  # the case that matters: some moved unprocessed
    openrouter.set_latency(0.0)
    left = [
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == own.ray_namespace and a["name"].startswith(old_version)
    ]  # fmt: skip
    assert left == [], "the old set is retired"
    # The old code and count are refused now; the new count starts.
    with pytest.raises(ActorSetMismatch, match="3 shards"):
        start_actors(own, database_url=database_url, redis_url=redis_url)
    wider = own.model_copy(update={"shard_count": 3})
    after = start_actors(wider, database_url=database_url, redis_url=redis_url)
    await after.ping()
    async with _gateway(wider, after, database_url) as webhooks:
        await eventually(lambda: _all_have(graph, phones, 3), within=60)
        for phone in phones:
            assert (await webhooks.post(envelope([text_message(phone, "four")]))).status_code == 200
        await eventually(lambda: _all_have(graph, phones, 4), within=60)
        await asyncio.sleep(1.0)  # a duplicate would have been sent by now
    for phone in phones:
        texts = [m.text for m in graph.messages_to(phone)]
        assert texts == [f"Echo: {t}" for t in ("one", "two", "three", "four")], (phone, texts)


async def _all_have(graph: GraphApiFake, phones: list[str], count: int) -> bool:
    return all(len(graph.messages_to(p)) >= count for p in phones)


async def test_reshard_is_refused_while_a_gateway_uses_the_set(
    own: Settings, database_url: str, redis_url: str
) -> None:
    kept = start_actors(own, database_url=database_url, redis_url=redis_url)
    await kept.ping()
    actor_set.beat(own, actor_set.wanted(own).version)  # as a serving gateway does
    try:
        refused = await asyncio.to_thread(_reshard, _cli_env(own, database_url, redis_url), 3)
    finally:
        actor_set.leave(own)
    assert refused.returncode == 2
    assert f"gateways still use the actors: {socket.gethostname()}:{os.getpid()}" in refused.stderr
    running = actor_set.running(own)
    assert running is not None and running.shard_count == 2 and not running.moving_to
    await kept.ping()  # and its actors still answer
