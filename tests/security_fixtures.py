"""A gateway of the test's own making, for the security tests: its own settings (production
mode, other secrets, other limits) on the session's Postgres and Redis, no actors.

Test modules import `own_gateway` from here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest_asyncio
from aiohttp import web

from config import Settings
from fakes.server import FakeServer
from gateway.app import create_app
from gateway.auth_passwords import hash_password
from store import users
from store.migrate import migrate
from store.records import InboxItem
from tests.databases import fresh_database

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

    async def start(database: str | None = None, **overrides: object) -> OwnGateway:
        overrides.setdefault("redis_key_prefix", f"wa-test-sec-{uuid.uuid4().hex[:8]}:")
        # Validated again (not model_copy), so "secret" strings become SecretStr.
        own = Settings(  # type: ignore[call-arg]
            _env_file=None,
            **{**settings.model_dump(), "database_url": database or database_url, **overrides},
        )
        routed = Recorder()
        app = create_app(own, routed, database_url=own.database_url or "", redis_url=redis_url)
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


@pytest_asyncio.fixture
async def empty_database(database_url: str) -> AsyncIterator[str]:
    """A migrated database of the test's own, with no operators (for "the first admin")."""
    async with fresh_database(database_url, "wa_test_sec") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield dsn


async def add_operator(db: asyncpg.Pool, role: str = "agent") -> tuple[str, str]:
    """An operator straight into the table; (email, password)."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.test"
    password = f"pw-{uuid.uuid4().hex}"
    async with db.acquire() as conn:
        await users.create_user(
            conn,
            email=email,
            display_name=role,
            password_hash=await hash_password(password),
            role=role,
        )
    return email, password
