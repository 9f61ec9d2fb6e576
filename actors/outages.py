"""Which failures are an outage of a part, not the fault of the message being handled.

Postgres restarting, Redis unreachable, a delivery or LLM actor that died mid-call, Meta
answering 429/5xx: the message is fine, and it must wait for the part to come back rather
than spend its tries and end as a dead letter (DESIGN.md §3, dead letters are for poison).
"""

from __future__ import annotations

import asyncio

import asyncpg
import redis.exceptions

from actors.batching import BatchCallFailed

# asyncpg raises these for a connection lost mid-query, a server shutting down or starting
# up, and one whose connection slots are full while every client reconnects after a
# restart (connecting while nothing listens is an OSError).
_POSTGRES = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
_REDIS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class PartUnavailable(RuntimeError):
    """Raised by our own code for a part that is known to be away (a deferred send, say)."""


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, _POSTGRES + _REDIS + (BatchCallFailed, PartUnavailable)):
        return True
    # A pool acquire or connect that found nothing listening, or timed out waiting.
    return isinstance(exc, (OSError, asyncio.TimeoutError)) and not isinstance(
        exc, (FileExistsError, IsADirectoryError, PermissionError)
    )
