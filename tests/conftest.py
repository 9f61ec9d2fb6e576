"""Session fixtures: real Postgres, Redis and Ray, started once; fakes of Meta and OpenRouter.

Tests share the machine's servers with other runs, so each session makes its own
database and Redis key prefix and removes them at the end (DESIGN.md §5).
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
import ray
from redis.asyncio import Redis

from actors.client import ActorClient
from actors.conversation.router import ShardRouter
from actors.runtime import init_ray, start_actors
from config import Settings
from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from fakes.server import FakeServer
from gateway.app import create_app
from store.db import close_pool, create_pool
from store.embedded import EmbeddedServers, start_postgres, start_redis
from store.migrate import migrate
from tests.support import WebhookClient

# The operator API's fixtures (gateway with actors attached, admin and agent operators).
pytest_plugins = ("tests.api_fixtures",)

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
GRAPH_TOKEN = "test-graph-token"
MSG91_SECRET = "test-msg91-secret"
OPENROUTER_KEY = "test-openrouter-key"
PRIMARY_MODEL = "test/primary"
FALLBACK_MODEL = "test/fallback"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedServers]:
    servers = EmbeddedServers()
    yield servers
    servers.stop()


@pytest_asyncio.fixture(scope="session")
async def database_url(embedded: EmbeddedServers) -> AsyncIterator[str]:
    """A fresh database under a random name on the machine's Postgres, dropped at the end."""
    if _reachable("127.0.0.1", 5432):
        admin_dsn = os.environ.get(
            "TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres"
        )
    else:
        admin_dsn = start_postgres(Path(tempfile.mkdtemp(prefix="wa-test-pg-")), embedded)
    name = f"wa_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    yield dsn
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.close()


@pytest_asyncio.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=5)
    yield pool
    await close_pool(pool)


@pytest.fixture(scope="session")
def redis_url(embedded: EmbeddedServers) -> str:
    if _reachable("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    return start_redis(Path(tempfile.mkdtemp(prefix="wa-test-redis-")), embedded)


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"wa-test-{uuid.uuid4().hex[:8]}:"


@pytest_asyncio.fixture(scope="session")
async def redis(redis_url: str, redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    # Only our own keys: the server is shared, so never FLUSHALL.
    async for key in client.scan_iter(match=f"{redis_prefix}*", count=500):
        await client.delete(key)
    await client.aclose()


@pytest_asyncio.fixture(scope="session")
async def graph() -> AsyncIterator[GraphApiFake]:
    fake = GraphApiFake(access_token=GRAPH_TOKEN, auto_statuses=())
    async with FakeServer(fake.app) as server:
        fake.base_url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest_asyncio.fixture(scope="session")
async def openrouter() -> AsyncIterator[OpenRouterFake]:
    fake = OpenRouterFake(api_key=OPENROUTER_KEY)
    async with FakeServer(fake.app) as server:
        fake.base_url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="session")
def settings(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    graph: Any,
    openrouter: Any,
) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        ray_namespace=f"wa-test-{uuid.uuid4().hex[:8]}",
        shard_count=2,
        whatsapp_access_token=GRAPH_TOKEN,
        whatsapp_phone_number_id="100200300400",
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        msg91_webhook_secret=MSG91_SECRET,
        whatsapp_graph_base_url=graph.base_url,
        openrouter_api_key=OPENROUTER_KEY,
        openrouter_base_url=openrouter.base_url,
        openrouter_primary_model=PRIMARY_MODEL,
        openrouter_fallback_model=[FALLBACK_MODEL],
        llm_timeout_seconds=3.0,
        llm_attempts_per_model=2,
        # Session-wide actors see many injected faults; breakers are tested on their own.
        llm_breaker_failures=10_000,
        llm_breaker_failure_rate=1.1,
        delivery_timeout_seconds=5.0,
        unknown_send_wait_seconds=2.0,
        # Many tests post statuses stamped long ago (fixed fixture timestamps): the session's
        # actors keep the plain wait; the lag-driven wait has its own tests.
        unknown_send_wait_max_seconds=2.0,
        media_max_bytes=64 * 1024,
        # Bursts of 50 replies to one phone would wait on Meta's pair rate; pacing has its
        # own tests.
        pair_interval_seconds=0,
        delivery_messages_per_second=1000,
        conversation_idle_seconds=3600,
        # Tests send bursts from one phone; the abuse limit has tests of its own.
        abuse_messages_per_window=100_000,
        # Tests register many operators from one IP; the throttle has its own tests.
        register_max_per_ip=100_000,
        # The shipped flows greet every new customer; flow tests bring their own.
        flows_path=None,
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
def ray_cluster(settings: Settings) -> Iterator[None]:
    """Real local Ray, started once per test session and stopped at the end."""
    init_ray(settings.model_copy(update={"ray_num_cpus": 2, "ray_object_store_mb": 150}))
    yield
    ray.shutdown()


@pytest_asyncio.fixture(scope="session")
async def actors(
    settings: Settings, ray_cluster: None, database_url: str, redis_url: str
) -> AsyncIterator[ActorClient]:
    actor_set = start_actors(settings, database_url=database_url, redis_url=redis_url)
    await actor_set.ping()
    yield actor_set
    actor_set.kill()


@pytest_asyncio.fixture(scope="session")
async def gateway(settings: Settings, actors: ActorClient, database_url: str) -> AsyncIterator[str]:
    """The real gateway app on a real port, routing to the real shards."""
    router = ShardRouter(actors.shards, max_batch=100, max_delay=0.003, keepalive=0.5)
    app = create_app(settings, router, database_url=database_url)
    async with FakeServer(app) as server:
        router.start()
        yield server.url
        await router.stop()


@pytest_asyncio.fixture
async def webhooks(gateway: str) -> AsyncIterator[WebhookClient]:
    client = WebhookClient(gateway, APP_SECRET)
    yield client
    await client.close()


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> Iterator[None]:
    # Reset only fakes a test uses; faults from one test must not leak into the next.
    for name in ("graph", "openrouter"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    yield
