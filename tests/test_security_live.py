"""A live event stream lasts no longer than the login that opened it."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from gateway.api import live
from tests.security_fixtures import OwnGateway, StartGateway, add_operator, own_gateway  # noqa: F401


async def _login(gateway: OwnGateway, db: asyncpg.Pool) -> dict[str, str]:
    email, password = await add_operator(db)
    login = await gateway.http.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200
    return dict(login.json())


async def _stream_until_closed(http: httpx.AsyncClient, token: str, opened: asyncio.Event) -> str:
    text = ""
    async with http.stream(
        "GET", "/api/events", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_text():
            text += chunk
            if "event: ready" in text:
                opened.set()
    return text


async def test_the_stream_closes_when_the_operator_logs_out(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "SESSION_CHECK_SECONDS", 0.3)
    gateway = await own_gateway()
    session = await _login(gateway, db)
    opened = asyncio.Event()
    stream = asyncio.create_task(
        _stream_until_closed(gateway.http, session["access_token"], opened)
    )
    await asyncio.wait_for(opened.wait(), 10)
    await gateway.http.post("/api/auth/logout", json={"refresh_token": session["refresh_token"]})
    text = await asyncio.wait_for(stream, 5)
    assert "event: logged-out" in text


async def test_the_stream_closes_when_its_access_token_expires(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    gateway = await own_gateway(jwt_access_ttl_seconds=2)
    session = await _login(gateway, db)
    started = time.monotonic()
    text = await asyncio.wait_for(
        _stream_until_closed(gateway.http, session["access_token"], asyncio.Event()), 8
    )
    assert "event: expired" in text
    assert time.monotonic() - started < 4
