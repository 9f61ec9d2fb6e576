"""Postgres or Redis gone: 503 with JSON naming the part, /api/health says which, and the
gateway is back by itself once the server is. The servers are this test's own (embedded,
in a temporary directory), so stopping them never touches the shared ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest_asyncio

from config import Settings
from fakes.server import FakeServer
from gateway.app import create_app
from store.embedded import EmbeddedPostgres, EmbeddedRedis
from store.migrate import migrate
from tests.support import WebhookClient, envelope, new_phone, text_message

EMAIL, PASSWORD = "first@example.test", "a long enough password"


class _NoShards:
    def submit(self, items: object) -> None:  # the shards are not what this test is about
        pass


@dataclass
class Own:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    http: httpx.AsyncClient


@pytest_asyncio.fixture
async def own(tmp_path: Path, settings: Settings) -> AsyncIterator[Own]:
    postgres, redis = EmbeddedPostgres(tmp_path / "own"), EmbeddedRedis(tmp_path / "own")
    database_url, redis_url = postgres.start(), redis.start()
    try:
        conn = await asyncpg.connect(database_url)
        await migrate(conn)
        await conn.close()
        app = create_app(
            settings.model_copy(update={"database_url": database_url, "redis_url": redis_url}),
            _NoShards(),
            database_url=database_url,
            redis_url=redis_url,
        )
        async with (
            FakeServer(app) as server,
            httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        ):
            registered = await http.post(
                "/api/auth/register",
                json={"email": EMAIL, "password": PASSWORD, "display_name": "First"},
            )
            assert registered.status_code == 201, registered.text
            yield Own(postgres, redis, http)
    finally:
        redis.stop()
        postgres.stop()


async def _login(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})


async def _health(http: httpx.AsyncClient) -> tuple[int, list[str]]:
    response = await http.get("/api/health")
    return response.status_code, response.json()["failing"]


async def test_redis_down_answers_503_naming_redis_and_recovers_when_it_returns(
    own: Own,
) -> None:
    assert (await _login(own.http)).status_code == 200
    own.redis.stop()

    response = await _login(own.http)
    assert response.status_code == 503
    assert response.json() == {"error": "redis is unavailable; try again shortly", "part": "redis"}
    assert response.headers["Retry-After"]
    status, failing = await _health(own.http)
    assert (status, "redis" in failing, "postgres" in failing) == (503, True, False)

    own.redis.start()
    assert (await _login(own.http)).status_code == 200
    assert "redis" not in (await _health(own.http))[1]


async def test_postgres_down_answers_503_naming_postgres_and_recovers_when_it_returns(
    own: Own, settings: Settings
) -> None:
    token = (await _login(own.http)).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (await own.http.get("/api/conversations", headers=auth)).status_code == 200
    own.postgres.stop()

    response = await own.http.get("/api/conversations", headers=auth)
    assert response.status_code == 503
    assert response.json()["part"] == "postgres"
    meta = WebhookClient(str(own.http.base_url), settings.app_secret())
    try:
        webhook = await meta.post(envelope([text_message(new_phone(), "hello")]))
    finally:
        await meta.close()
    assert webhook.status_code == 503  # Meta retries; nothing was acknowledged unstored
    status, failing = await _health(own.http)
    assert (status, "postgres" in failing, "redis" in failing) == (503, True, False)

    own.postgres.start()
    assert (await own.http.get("/api/conversations", headers=auth)).status_code == 200
    assert (await _health(own.http))[1] == []
