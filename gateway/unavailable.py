"""Postgres or Redis down: 503 with a JSON error naming the part, never a 500 with a trace.

The clients reconnect by themselves (asyncpg's pool replaces closed connections, and the
gateway's PoolHolder retries a pool it could not create; redis-py opens a new connection
on the next command), so once the server is back the next request simply works. Until
then every request that needed it is told which part is missing and when to try again.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable

import asyncpg
import redis.exceptions
import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RETRY_AFTER_SECONDS = "5"

_REDIS_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)
_POSTGRES_DOWN = (
    asyncpg.PostgresConnectionError,
    # The server is shutting down, crashed or still starting up (class 57P).
    asyncpg.exceptions.OperatorInterventionError,
)


def unavailable_part(exc: BaseException) -> str | None:
    """'postgres' or 'redis' when `exc` says that server is unreachable, else None."""
    for error in _chain(exc):
        if isinstance(error, _REDIS_DOWN):
            return "redis"
        if isinstance(error, _POSTGRES_DOWN):
            return "postgres"
        if isinstance(error, asyncpg.InterfaceError) and "closed" in str(error):
            return "postgres"  # the connection or the pool went away under the query
        # asyncpg lets a refused or missing socket, or a connect timeout, through as is.
        if isinstance(error, OSError | TimeoutError) and _raised_in_asyncpg(error):
            return "postgres"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _raised_in_asyncpg(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return any("/asyncpg/" in frame.filename for frame in frames)


def unavailable_response(part: str) -> web.Response:
    # The API's error shape ({"error": ...}), with the part a script can switch on.
    return web.json_response(
        {"error": f"{part} is unavailable; try again shortly", "part": part},
        status=503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


@web.middleware
async def unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        part = unavailable_part(exc)
        if part is None:
            raise
        # One line, no trace: the outage is the news, and /api/health says the rest.
        log.warning("dependency_unavailable", part=part, path=request.path,
                    error=type(exc).__name__)  # fmt: skip
        return unavailable_response(part)
