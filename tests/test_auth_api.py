"""Operator authentication and authorization: who may call what, and how sessions work."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import jwt
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from actors.client import ActorClient
from config import Settings
from fakes.server import FakeServer
from gateway import api as api_module
from gateway.app import create_app
from store import users
from store.migrate import migrate
from tests.api_fixtures import ADMIN_EMAIL, ADMIN_PASSWORD, Operator, new_operator


class _NoDispatch:
    def submit(self, items: object) -> None:
        return None


@pytest_asyncio.fixture
async def make_gateway(
    settings: Settings, database_url: str, redis_url: str
) -> AsyncIterator[object]:
    """Another gateway process on the same Postgres and Redis, with its own settings."""
    servers: list[FakeServer] = []

    async def start(**overrides: object) -> httpx.AsyncClient:
        app = create_app(
            settings.model_copy(update=overrides),
            _NoDispatch(),
            database_url=database_url,
            redis_url=redis_url,
        )
        server = FakeServer(app)
        await server.start()
        servers.append(server)
        return httpx.AsyncClient(base_url=server.url, timeout=30)

    yield start
    for server in servers:
        await server.stop()


def _protected_calls() -> list[tuple[str, str, str]]:
    calls = []
    for path, operations in api_module.spec()["paths"].items():
        concrete = re.sub(r"{\w+_id}", "1", path).replace("{label}", "vip")
        for method, operation in operations.items():
            if operation.get("security"):
                admin_only = "403" in operation["responses"]
                calls.append((method.upper(), concrete, "admin" if admin_only else "agent"))
    return calls


async def test_every_protected_route_without_a_token_is_401_and_shows_no_data(
    api: httpx.AsyncClient,
) -> None:
    calls = _protected_calls()
    assert len(calls) > 30
    for method, path, _ in calls:
        response = await api.request(method, path, json={})
        assert response.status_code == 401, (method, path, response.status_code)
        assert set(response.json()) == {"error"}
    # Unknown API paths do not reveal whether they exist.
    assert (await api.get("/api/no-such-thing")).status_code == 401
    # A forged token (signed with another key) is no token.
    forged = jwt.encode(
        {
            "sub": "1",
            "role": "admin",
            "exp": 9999999999,
            "iat": 1,
            "iss": "wa-support",
            "typ": "access",
        },
        "a-guess-" * 8,
        algorithm="HS256",
    )
    response = await api.get("/api/conversations", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_an_agent_on_every_admin_route_is_403(
    api: httpx.AsyncClient, agent: Operator
) -> None:
    admin_calls = [(m, p) for m, p, role in _protected_calls() if role == "admin"]
    assert {p for _, p in admin_calls} >= {
        "/api/settings",
        "/api/db-test",
        "/api/test-llm",
        "/api/test-whatsapp",
        "/api/test/instructions",
        "/api/auth/invites",
    }
    for method, path in admin_calls:
        response = await api.request(method, path, json={}, headers=agent.headers)
        assert response.status_code == 403, (method, path, response.status_code)


async def test_public_routes_answer_without_a_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/health")).status_code in (200, 503)
    assert (await api.get("/health")).status_code == 200
    assert (await api.get("/api/auth/registration")).status_code == 200
    assert (await api.get("/login")).status_code == 200


async def test_dashboard_pages_without_a_session_redirect_to_login(api: httpx.AsyncClient) -> None:
    for path in ("/dashboard", "/dashboard/conversations", "/dashboard/settings"):
        response = await api.get(path, follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


async def test_first_user_becomes_admin_even_when_two_register_at_once(
    database_url: str,
) -> None:
    # A database of its own: "first" needs an empty users table.
    name = f"wa_test_users_{uuid.uuid4().hex[:8]}"
    admin_conn = await asyncpg.connect(database_url)
    await admin_conn.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        conns = [await asyncpg.connect(dsn) for _ in range(4)]
        await migrate(conns[0])
        created = await asyncio.gather(
            *(
                users.create_user(
                    c, email=f"u{i}@x.test", display_name="u", password_hash="h", role=None
                )
                for i, c in enumerate(conns)
            )
        )
        assert sorted(u.role for u in created) == ["admin", "agent", "agent", "agent"]
        for c in conns:
            await c.close()
    finally:
        await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_conn.close()


async def test_after_the_first_user_registration_needs_a_valid_unused_invite(
    api: httpx.AsyncClient, admin: Operator
) -> None:
    body = {"email": "walk-in@example.test", "password": "long enough pw", "display_name": "W"}
    refused = await api.post("/api/auth/register", json=body)
    assert refused.status_code == 403
    assert (
        await api.post("/api/auth/register", json={**body, "invite": "made-up"})
    ).status_code == 403

    invite = await api.post("/api/auth/invites", json={"role": "agent"}, headers=admin.headers)
    token = invite.json()["token"]
    assert invite.json()["register_url"].endswith(token)
    first = await api.post("/api/auth/register", json={**body, "invite": token})
    assert first.status_code == 201
    assert first.json()["user"]["role"] == "agent"
    again = await api.post(
        "/api/auth/register", json={**body, "email": "second@example.test", "invite": token}
    )
    assert again.status_code == 403


async def test_an_invite_for_one_email_does_not_admit_another(
    api: httpx.AsyncClient, admin: Operator
) -> None:
    invite = await api.post(
        "/api/auth/invites", json={"email": "meant@example.test"}, headers=admin.headers
    )
    response = await api.post(
        "/api/auth/register",
        json={
            "email": "other@example.test",
            "password": "long enough pw",
            "display_name": "O",
            "invite": invite.json()["token"],
        },
    )
    assert response.status_code == 403


async def test_passwords_are_stored_as_argon2id_hashes(
    api: httpx.AsyncClient, admin: Operator, db: asyncpg.Pool
) -> None:
    stored = await db.fetchval("SELECT password_hash FROM users WHERE email = $1", ADMIN_EMAIL)
    assert stored.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in stored


async def test_login_gives_an_hs256_jwt_with_expiry_and_httponly_samesite_cookies(
    api: httpx.AsyncClient, admin: Operator, settings: Settings
) -> None:
    response = await api.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == settings.jwt_access_ttl_seconds
    assert claims["role"] == "admin"
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("wa_session="))
    refresh = next(c for c in cookies if c.startswith("wa_refresh="))
    for cookie in (session, refresh):
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/api/auth" in refresh


async def test_the_session_cookie_alone_authenticates_the_pages_and_the_api(
    api_url: str, admin: Operator
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as browser:
        await browser.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert (await browser.get("/api/auth/me")).json()["email"] == ADMIN_EMAIL
        assert (await browser.get("/dashboard", follow_redirects=False)).status_code == 200


async def test_a_cookie_request_from_another_site_is_refused(api_url: str, admin: Operator) -> None:
    async with httpx.AsyncClient(base_url=api_url) as browser:
        await browser.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        response = await browser.post(
            "/api/canned-responses",
            json={"title": "x", "body": "y"},
            headers={"Origin": "https://evil.example"},
        )
        assert response.status_code == 403


async def test_a_refresh_token_works_once_and_logout_revokes_it(
    api: httpx.AsyncClient, admin: Operator
) -> None:
    login = await api.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    refresh = login.json()["refresh_token"]
    renewed = await api.post("/api/auth/refresh", json={"refresh_token": refresh})
    assert renewed.status_code == 200
    new_access = renewed.json()["access_token"]
    me = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {new_access}"})
    assert me.status_code == 200
    assert (await api.post("/api/auth/refresh", json={"refresh_token": refresh})).status_code == 401

    newer = renewed.json()["refresh_token"]
    assert (await api.post("/api/auth/logout", json={"refresh_token": newer})).status_code == 200
    assert (await api.post("/api/auth/refresh", json={"refresh_token": newer})).status_code == 401


async def test_an_expired_access_token_is_refused(
    api: httpx.AsyncClient, admin: Operator, settings: Settings
) -> None:
    from gateway.auth_tokens import issue_access_token

    expired = issue_access_token(
        settings.model_copy(update={"jwt_access_ttl_seconds": -10}), admin.id, "admin"
    )
    response = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401


async def test_failed_logins_lock_the_account_in_every_gateway_process(
    api: httpx.AsyncClient, admin: Operator, settings: Settings, make_gateway: object
) -> None:
    operator = await new_operator(api, admin)
    wrong = {"email": operator.email, "password": "wrong password"}
    for _ in range(settings.login_max_failures_per_account):
        assert (await api.post("/api/auth/login", json=wrong)).status_code == 401
    right = {"email": operator.email, "password": operator.password}
    locked = await api.post("/api/auth/login", json=right)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    # The count lives in Redis: a second gateway process sees the same lockout.
    other = await make_gateway()  # type: ignore[operator]
    try:
        assert (await other.post("/api/auth/login", json=right)).status_code == 429
    finally:
        await other.aclose()


async def test_failed_logins_from_one_ip_over_many_accounts_are_throttled(
    make_gateway: object, admin: Operator
) -> None:
    client = await make_gateway(  # type: ignore[operator]
        login_max_failures_per_ip=3, redis_key_prefix=f"wa-test-ip-{uuid.uuid4().hex[:6]}:"
    )
    try:
        for i in range(3):
            response = await client.post(
                "/api/auth/login", json={"email": f"nobody{i}@x.test", "password": "nope"}
            )
            assert response.status_code == 401
        blocked = await client.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert blocked.status_code == 429
        assert "ip" in blocked.json()["error"]
    finally:
        await client.aclose()


async def test_closed_registration_refuses_newcomers_and_invites(
    make_gateway: object, admin: Operator
) -> None:
    client = await make_gateway(registration_mode="closed")  # type: ignore[operator]
    try:
        info = (await client.get("/api/auth/registration")).json()
        assert info == {
            "open_to_first_user": False,
            "mode": "closed",
            "needs_bootstrap_secret": False,
        }
        body = {"email": "late@x.test", "password": "long enough pw", "display_name": "L"}
        assert (await client.post("/api/auth/register", json=body)).status_code == 403
        invite = await client.post("/api/auth/invites", json={}, headers=admin.headers)
        assert invite.status_code == 409
    finally:
        await client.aclose()


async def test_registration_rejects_weak_or_malformed_input(api: httpx.AsyncClient) -> None:
    for body in (
        {"email": "a@b.test", "password": "short", "display_name": "x"},
        {"email": "not-an-email", "password": "long enough pw", "display_name": "x"},
        {"email": "a@b.test", "password": "long enough pw"},
    ):
        response = await api.post("/api/auth/register", json=body)
        assert response.status_code == 422
        assert "long enough pw" not in response.text  # inputs are never echoed back
    assert (await api.post("/api/auth/register", content=b"{oops")).status_code == 400


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer not.a.jwt"])
async def test_malformed_authorization_headers_are_401(api: httpx.AsyncClient, header: str) -> None:
    response = await api.get("/api/conversations", headers={"Authorization": header})
    assert response.status_code == 401


_ = (ActorClient, Redis)
