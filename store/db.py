"""The asyncpg connection pool."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSONB in and out as Python objects, so callers never hand-serialise payloads.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=json.loads,
        schema="pg_catalog",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool.

    asyncpg's default reset sends "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL" on every release: one more round trip per acquire, 15% of a shard's busy
    time in a profile under load. Our connections keep no session state (advisory locks
    are per transaction, no LISTEN, no SET), and asyncpg still rolls back a transaction
    left open before calling this.
    """


T = TypeVar("T")

# Postgres aborts one side of a deadlock (40P01) or of a serialization conflict (40001) and
# lets the other go on, so the aborted transaction, run again, goes through. Batched writes
# (the gateway's group commit, a shard's turns, a delivery actor's claims) update many rows
# per transaction, so two of them can now and then take row locks in opposite orders.
CONFLICT_STATES = frozenset({"40P01", "40001"})
CONFLICT_TRIES = 3


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in CONFLICT_STATES


async def retry_conflicts(run: Callable[[], Awaitable[T]], *, tries: int = CONFLICT_TRIES) -> T:
    """Run the transaction `run` again when Postgres chose it as a deadlock's victim."""
    for attempt in range(1, tries + 1):
        try:
            return await run()
        except asyncpg.PostgresError as exc:
            if not is_conflict(exc) or attempt == tries:
                raise
            # Apart, so the two sides do not meet again in the same step.
            await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable: the last try raises or returns")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        # Fail fast when Postgres is unreachable, so the webhook can answer 503.
        timeout=5,
        command_timeout=30,
    )
    return pool


async def close_pool(pool: asyncpg.Pool, seconds: float = 5.0) -> bool:
    """Close gracefully, bounded; False when connections had to be cut.

    asyncpg's close waits for every connection to come back, so one held by a task cut
    short would hold a shutdown forever.
    """
    try:
        await asyncio.wait_for(pool.close(), seconds)
    except TimeoutError:
        pool.terminate()
        return False
    return True
