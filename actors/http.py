"""The one HTTP client stack for outside services: aiohttp.

The Graph API (sends, read receipts, media), MSG91 and OpenRouter each go through one
`aiohttp.ClientSession` per actor, with a pool sized by configuration. aiohttp, not httpx:
httpcore's pool collapses with hundreds of requests in flight (encode/httpcore#1035), and
httpx over aiohttp's pool (httpx-aiohttp) still costs 2-3 times aiohttp's CPU per request;
BENCHMARKS.md "HTTP client stacks" has the measurements. Tests point clients at the local
fakes (fakes/) by base URL.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from config import Settings


@dataclass(frozen=True, slots=True)
class HttpPool:
    """How many connections a client keeps, and how long an idle one stays open."""

    connections: int = 100
    keepalive_seconds: float = 60.0

    @classmethod
    def for_delivery(cls, settings: Settings) -> HttpPool:
        return cls(settings.http_pool_connections, settings.http_keepalive_seconds)

    @classmethod
    def for_llm(cls, settings: Settings) -> HttpPool:
        return cls(settings.llm_http_pool_connections, settings.http_keepalive_seconds)


# For a client made outside an actor: tests and one-off diagnostics.
DEFAULT_POOL = HttpPool()


class HttpClient:
    """One session with its own connection pool, made on first use inside the event loop
    (aiohttp binds a session to the loop that runs it)."""

    def __init__(
        self,
        *,
        base_url: str = "",
        headers: dict[str, str] | None = None,
        timeout: float,
        pool: HttpPool,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = headers or {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(
                    limit=self._pool.connections, keepalive_timeout=self._pool.keepalive_seconds
                ),
            )
        return self._session

    def url(self, path: str) -> str:
        """`path` under the base URL; an absolute URL (a media download) stays as it is."""
        return path if "://" in path else self.base_url + path

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
