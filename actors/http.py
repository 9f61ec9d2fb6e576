"""The one HTTP client stack for outside services: httpx over aiohttp's connection pool.

The Graph API (sends, read receipts, media), MSG91 and OpenRouter all go through an
`httpx.AsyncClient` whose transport is httpx-aiohttp's `AiohttpTransport`. httpx gives one
request/response API and a transport seam for tests; aiohttp's pool holds hundreds of
requests in flight where httpcore's collapses (encode/httpcore#1035). BENCHMARKS.md "HTTP
client stacks" has the measurements. Each actor makes one client and keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from config import Settings


@dataclass(frozen=True, slots=True)
class HttpPool:
    """How many connections a client keeps, and how long an idle one stays open."""

    connections: int = 100
    keepalive_seconds: float = 30.0

    @classmethod
    def for_delivery(cls, settings: Settings) -> HttpPool:
        return cls(settings.http_pool_connections, settings.http_keepalive_seconds)

    @classmethod
    def for_llm(cls, settings: Settings) -> HttpPool:
        return cls(settings.llm_http_pool_connections, settings.http_keepalive_seconds)


# For a client made outside an actor: tests and one-off diagnostics.
DEFAULT_POOL = HttpPool()


def http_client(
    *,
    base_url: str = "",
    headers: dict[str, str] | None = None,
    timeout: float,
    pool: HttpPool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """A client with its own connection pool; `transport` replaces the network in tests."""
    # HttpxAiohttpClient puts AiohttpTransport under every route, those of proxies set in
    # the environment (HTTPS_PROXY, ...) included.
    return HttpxAiohttpClient(
        base_url=base_url.rstrip("/"),
        headers=headers,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(
            max_connections=pool.connections, keepalive_expiry=pool.keepalive_seconds
        ),
        transport=transport,
    )
