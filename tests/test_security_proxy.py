"""Behind a TLS proxy: whose forwarded headers are believed, and who may observe."""

from __future__ import annotations

import asyncpg
import httpx

from tests.security_fixtures import StartGateway, add_operator, own_gateway  # noqa: F401

PROXY = {"trusted_proxies": ["127.0.0.1/32"]}
# What nginx in front of https://support.example sets.
VIA_PROXY = {"Host": "support.example", "X-Forwarded-Proto": "https"}


async def _cookie_write(http: httpx.AsyncClient, email: str, password: str) -> int:
    """A write by a logged-in browser page on https://support.example."""
    login = await http.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=VIA_PROXY
    )
    assert login.status_code == 200, login.text
    response = await http.post(
        "/api/conversations/999999999/close",
        # The session cookie the login set, kept by the client like a browser keeps it.
        headers={**VIA_PROXY, "Origin": "https://support.example"},
    )
    return response.status_code


async def test_behind_a_trusted_tls_proxy_a_same_origin_cookie_write_is_accepted(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    gateway = await own_gateway(**PROXY)
    # Past the Origin check: the conversation does not exist.
    assert await _cookie_write(gateway.http, *await add_operator(db)) == 404


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    gateway = await own_gateway()  # TRUSTED_PROXIES empty
    assert await _cookie_write(gateway.http, *await add_operator(db)) == 403


async def _fail_login(http: httpx.AsyncClient, forwarded_for: str) -> int:
    response = await http.post(
        "/api/auth/login",
        json={"email": "nobody@x.test", "password": "wrong"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return response.status_code


async def test_the_per_ip_login_throttle_counts_the_client_behind_the_proxy(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    gateway = await own_gateway(login_max_failures_per_ip=2, **PROXY)
    assert [await _fail_login(gateway.http, "203.0.113.5") for _ in range(3)] == [401, 401, 429]
    # Another customer behind the same proxy is not locked out with the first...
    assert await _fail_login(gateway.http, "203.0.113.6") == 401
    # ...and a client cannot hide by putting an address of its own in front.
    assert await _fail_login(gateway.http, "198.51.100.1, 203.0.113.5") == 429


async def test_without_trusted_proxies_x_forwarded_for_does_not_escape_the_throttle(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    gateway = await own_gateway(login_max_failures_per_ip=2)
    codes = [await _fail_login(gateway.http, f"203.0.113.{i}") for i in range(3)]
    assert codes == [401, 401, 429]


async def test_metrics_and_health_detail_are_only_for_observers(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    # The test client is on loopback; here loopback is not an observability network.
    gateway = await own_gateway(observability_networks=["10.0.0.0/8"], metrics_token="scrape")
    assert (await gateway.http.get("/metrics")).status_code == 403
    health = await gateway.http.get("/api/health")
    assert health.json() == {"status": "ok"} or health.json() == {"status": "unavailable"}
    # The liveness check stays public.
    assert (await gateway.http.get("/health")).status_code == 200

    token = {"Authorization": "Bearer scrape"}
    metrics = await gateway.http.get("/metrics", headers=token)
    assert metrics.status_code == 200
    assert "wa_" in metrics.text
    detail = (await gateway.http.get("/api/health", headers=token)).json()
    assert "postgres" in detail["checks"]
    assert (
        await gateway.http.get("/metrics", headers={"Authorization": "Bearer no"})
    ).status_code == 403


async def test_metrics_are_served_to_the_observability_networks(
    own_gateway: StartGateway,  # noqa: F811
) -> None:
    gateway = await own_gateway()  # loopback by default
    assert (await gateway.http.get("/metrics")).status_code == 200
    assert "checks" in (await gateway.http.get("/api/health")).json()
