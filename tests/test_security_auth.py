"""Operator sessions under attack: the first admin, stolen refresh tokens, guessing."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from gateway.auth_passwords import hash_password, verify_password
from tests.security_fixtures import (  # noqa: F401
    PRODUCTION,
    OwnGateway,
    StartGateway,
    add_operator,
    empty_database,
    own_gateway,
)

CLI = Path(sys.executable).with_name("wa-support")
BOOTSTRAP = "bootstrap-secret-for-the-first-admin"


def _register(email: str, **extra: object) -> dict[str, object]:
    return {"email": email, "password": "long enough pw", "display_name": "First", **extra}


async def _login(gateway: OwnGateway, email: str, password: str) -> str:
    """Log in; the refresh token."""
    login = await gateway.http.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return str(login.json()["refresh_token"])


async def _refresh(gateway: OwnGateway, token: str) -> httpx.Response:
    return await gateway.http.post("/api/auth/refresh", json={"refresh_token": token})


async def test_in_production_the_first_anonymous_registration_is_not_made_admin(
    own_gateway: StartGateway,  # noqa: F811
    empty_database: str,  # noqa: F811
) -> None:
    gateway = await own_gateway(database=empty_database, **PRODUCTION)
    info = (await gateway.http.get("/api/auth/registration")).json()
    assert info["needs_bootstrap_secret"] is True
    refused = await gateway.http.post("/api/auth/register", json=_register("a@x.test"))
    assert refused.status_code == 403
    assert "ADMIN_BOOTSTRAP_SECRET" in refused.json()["error"]
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await conn.close()


async def test_in_production_the_first_admin_registers_with_the_bootstrap_secret(
    own_gateway: StartGateway,  # noqa: F811
    empty_database: str,  # noqa: F811
) -> None:
    gateway = await own_gateway(
        database=empty_database, admin_bootstrap_secret=BOOTSTRAP, **PRODUCTION
    )
    wrong = await gateway.http.post(
        "/api/auth/register", json=_register("a@x.test", bootstrap_secret="guess")
    )
    assert wrong.status_code == 403
    right = await gateway.http.post(
        "/api/auth/register", json=_register("a@x.test", bootstrap_secret=BOOTSTRAP)
    )
    assert right.status_code == 201, right.text
    assert right.json()["user"]["role"] == "admin"
    # The secret made one admin; after that, invites as usual.
    again = await gateway.http.post(
        "/api/auth/register", json=_register("b@x.test", bootstrap_secret=BOOTSTRAP)
    )
    assert again.status_code == 403


async def test_the_cli_creates_the_first_admin_who_can_then_log_in(
    own_gateway: StartGateway,  # noqa: F811
    empty_database: str,  # noqa: F811
) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database, "APP_ENV": "production"}
    done = await asyncio.to_thread(
        subprocess.run,
        [str(CLI), "user", "create", "--email", "root@x.test", "--name", "Root", "--admin"],
        input="a long admin password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    gateway = await own_gateway(database=empty_database, **PRODUCTION)
    login = await gateway.http.post(
        "/api/auth/login", json={"email": "root@x.test", "password": "a long admin password"}
    )
    assert login.status_code == 200, login.text
    assert login.json()["user"]["role"] == "admin"


async def test_a_refresh_token_used_twice_revokes_every_token_of_that_login(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    gateway = await own_gateway()
    email, password = await add_operator(db)
    stolen = await _login(gateway, email, password)
    # The thief refreshes first and keeps the newer token...
    thief = await _refresh(gateway, stolen)
    assert thief.status_code == 200
    # ...the operator's copy of the old one comes back: a replay, the login is revoked.
    replay = await _refresh(gateway, stolen)
    assert replay.status_code == 401
    assert "reused" in replay.json()["error"]
    assert (await _refresh(gateway, thief.json()["refresh_token"])).status_code == 401
    # Another login of the same operator is another family, untouched.
    other = await _login(gateway, email, password)
    assert (await _refresh(gateway, other)).status_code == 200


async def test_logout_revokes_the_tokens_issued_before_it_in_that_login(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    gateway = await own_gateway()
    first = await _login(gateway, *await add_operator(db))
    second = (await _refresh(gateway, first)).json()["refresh_token"]
    assert (await gateway.http.post("/api/auth/logout", json={"refresh_token": first})).is_success
    assert (await _refresh(gateway, second)).status_code == 401


async def test_concurrent_wrong_passwords_are_checked_no_more_than_the_limit(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    gateway = await own_gateway(login_max_failures_per_account=5)
    email, _ = await add_operator(db)
    wrong = {"email": email, "password": "not the password"}
    answers = await asyncio.gather(
        *(gateway.http.post("/api/auth/login", json=wrong) for _ in range(30))
    )
    codes = [a.status_code for a in answers]
    assert codes.count(401) == 5, codes
    assert codes.count(429) == 25


async def test_a_right_password_after_failures_logs_in_and_starts_the_count_afresh(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    gateway = await own_gateway(login_max_failures_per_account=3, login_max_failures_per_ip=3)
    email, password = await add_operator(db)
    for _ in range(2):
        bad = await gateway.http.post("/api/auth/login", json={"email": email, "password": "x"})
        assert bad.status_code == 401
    right = {"email": email, "password": password}
    # Many successful logins from one IP never lock it: each gives its attempt back.
    for _ in range(5):
        assert (await gateway.http.post("/api/auth/login", json=right)).status_code == 200


async def test_an_unknown_email_takes_as_long_to_refuse_as_a_wrong_password() -> None:
    real = await hash_password("the real password")

    async def timed(password_hash: str | None) -> float:
        started = time.perf_counter()
        assert not await verify_password(password_hash, "a guess")
        return time.perf_counter() - started

    # Interleaved, so load from other test runs on the machine falls on both alike. Without
    # the dummy verification the unknown email answers a thousand times sooner.
    known, unknown = [], []
    for _ in range(7):
        known.append(await timed(real))
        unknown.append(await timed(None))
    assert statistics.median(unknown) > 0.3 * statistics.median(known), (unknown, known)


async def test_registrations_from_one_ip_are_throttled_before_hashing(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    gateway = await own_gateway(register_max_per_ip=3)
    codes = []
    for i in range(5):
        response = await gateway.http.post(
            "/api/auth/register", json=_register(f"walk-in{i}@x.test", invite="made-up")
        )
        codes.append(response.status_code)
    assert codes[3:] == [429, 429], codes
    assert all(c != 429 for c in codes[:3]), codes


async def test_session_cookies_are_secure_by_default_in_production(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    email, password = await add_operator(db)
    production = await own_gateway(**PRODUCTION)
    login = await production.http.post(
        "/api/auth/login", json={"email": email, "password": password}
    )
    cookies = login.headers.get_list("set-cookie")
    assert cookies and all("Secure" in c for c in cookies), cookies
    development = await own_gateway()
    login = await development.http.post(
        "/api/auth/login", json={"email": email, "password": password}
    )
    assert not any("Secure" in c for c in login.headers.get_list("set-cookie"))
