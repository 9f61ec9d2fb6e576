"""Fixtures for the operator API tests: the full gateway (API, pages, live events) with
real actors, and operators to call it as.

Test modules import the fixtures they use from here. Registration is idempotent across
modules: the first caller registers the admin (the first user of the session database),
later ones log in with the same credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio
from redis.asyncio import Redis

from actors.client import ActorClient
from actors.conversation.router import ShardRouter
from config import Settings
from fakes.server import FakeServer
from gateway.app import create_app

ADMIN_EMAIL = "admin@example.test"
ADMIN_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Operator:
    id: int
    email: str
    password: str
    token: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest_asyncio.fixture(scope="session")
async def api_url(
    settings: Settings, actors: ActorClient, database_url: str, redis_url: str, redis: Redis
) -> AsyncIterator[str]:
    """The whole gateway on a real port, with the actors' handles attached."""
    router = ShardRouter(actors.shards, max_batch=100, max_delay=0.003, keepalive=0.5)
    app = create_app(
        settings, router, database_url=database_url, redis_url=redis_url, actors=actors
    )
    async with FakeServer(app) as server:
        router.start()
        yield server.url
        await router.stop()


@pytest_asyncio.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


async def _login(client: httpx.AsyncClient, email: str, password: str) -> Operator:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return Operator(body["user"]["id"], email, password, body["access_token"], body["user"]["role"])


@pytest_asyncio.fixture(scope="session")
async def admin(api_url: str) -> Operator:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        response = await client.post(
            "/api/auth/register",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "display_name": "Admin"},
        )
        assert response.status_code in (201, 403), response.text
        operator = await _login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert operator.role == "admin"
    return operator


async def new_operator(
    client: httpx.AsyncClient, admin: Operator, role: str = "agent", name: str = "Agent"
) -> Operator:
    """Invited by the admin, registered with the invite, logged in."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.test"
    invite = await client.post(
        "/api/auth/invites", json={"email": email, "role": role}, headers=admin.headers
    )
    assert invite.status_code == 201, invite.text
    password = f"pw-{uuid.uuid4().hex}"
    registered = await client.post(
        "/api/auth/register",
        json={
            "email": email,
            "password": password,
            "display_name": name,
            "invite": invite.json()["token"],
        },
    )
    assert registered.status_code == 201, registered.text
    return await _login(client, email, password)


@pytest_asyncio.fixture
async def agent(api: httpx.AsyncClient, admin: Operator) -> Operator:
    return await new_operator(api, admin)
