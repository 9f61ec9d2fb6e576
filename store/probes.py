"""Round trips that health and the admin diagnostics time: they prove a server answers.

The callers own the deadlines and report failures by exception type only, since
connection errors can carry DSNs with passwords.
"""

from __future__ import annotations

import random

import asyncpg
from redis.asyncio import Redis


async def postgres_ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval("SELECT 1")


async def postgres_version(conn: asyncpg.Connection) -> str:
    version: str = await conn.fetchval("SHOW server_version")
    return version


async def redis_ping(redis: Redis) -> None:
    await redis.ping()


async def redis_round_trip(redis: Redis, prefix: str) -> None:
    """SET, GET and DEL of a throwaway key, which expires by itself if the DEL is lost."""
    key = f"{prefix}db-test:{random.getrandbits(32)}"
    await redis.set(key, "1", ex=10)
    await redis.get(key)
    await redis.delete(key)
