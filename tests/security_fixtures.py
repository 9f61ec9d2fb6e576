"""A gateway of the test's own making, for the security tests: its own settings (production
mode, other secrets, other limits) on the session's Postgres and Redis, no actors.

Test modules import `own_gateway` from here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
import pytest_asyncio
from aiohttp import web

from config import Settings
from fakes.server import FakeServer
from gateway.app import create_app
from store.records import InboxItem

PRODUCTION = {"app_env": "production", "jwt_secret": "a-long-production-jwt-secret-for-tests"}


@dataclass
class Recorder:
    """Stands for the shard router: what the gateway would hand to the shards."""

    items: list[InboxItem] = field(default_factory=list)

    def submit(self, items: Sequence[InboxItem]) -> None:
        self.items.extend(items)


@dataclass
class OwnGateway:
    http: httpx.AsyncClient
    app: web.Application
    settings: Settings
    routed: Recorder


StartGateway = Callable[..., Awaitable[OwnGateway]]


@pytest_asyncio.fixture
async def own_gateway(
    settings: Settings, database_url: str, redis_url: str
) -> AsyncIterator[StartGateway]:
    """`await own_gateway(**settings_overrides)`; each gets its own Redis prefix, so its
    counters (login failures, throttles) start at zero."""
    servers: list[FakeServer] = []
    clients: list[httpx.AsyncClient] = []

    async def start(**overrides: object) -> OwnGateway:
        overrides.setdefault("redis_key_prefix", f"wa-test-sec-{uuid.uuid4().hex[:8]}:")
        # Validated again (not model_copy), so "secret" strings become SecretStr.
        own = Settings(_env_file=None, **{**settings.model_dump(), **overrides})  # type: ignore[call-arg]
        routed = Recorder()
        app = create_app(own, routed, database_url=database_url, redis_url=redis_url)
        server = FakeServer(app)
        await server.start()
        servers.append(server)
        client = httpx.AsyncClient(base_url=server.url, timeout=30)
        clients.append(client)
        return OwnGateway(client, app, own, routed)

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        await server.stop()
