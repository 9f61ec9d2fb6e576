"""The asyncpg connection pool."""

from __future__ import annotations

import json
from typing import Any

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


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        # Fail fast when Postgres is unreachable, so the webhook can answer 503.
        timeout=5,
        command_timeout=30,
    )
    return pool
