"""Operator-edited settings in Postgres, with a change counter in Redis.

Postgres holds the values. Every write bumps a Redis counter, so the actors learn of a
change with one cheap GET and reload only then, without a restart.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from redis.asyncio import Redis

VERSION_KEY = "settings:version"


async def load_all(conn: asyncpg.Connection) -> dict[str, Any]:
    rows = await conn.fetch("SELECT key, value FROM app_settings")
    return {r["key"]: r["value"] for r in rows}


async def put(
    conn: asyncpg.Connection,
    redis: Redis,
    prefix: str,
    key: str,
    value: Any,
    *,
    updated_by: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO app_settings (key, value, updated_by) VALUES ($1, $2::jsonb, $3)
           ON CONFLICT (key) DO UPDATE
           SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = now()""",
        key,
        value,
        updated_by,
    )
    await redis.incr(prefix + VERSION_KEY)


async def delete(conn: asyncpg.Connection, redis: Redis, prefix: str, key: str) -> None:
    await conn.execute("DELETE FROM app_settings WHERE key = $1", key)
    await redis.incr(prefix + VERSION_KEY)


async def version(redis: Redis, prefix: str) -> int:
    raw = await redis.get(prefix + VERSION_KEY)
    return int(raw) if raw is not None else 0
