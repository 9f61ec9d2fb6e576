"""The per-phone abuse limit, shared by every shard on every node through Redis.

A phone may send `limit` messages per fixed window (10 a minute by default, as the seed
had it). Messages past it are stored but not answered by the LLM; the customer gets at
most one "please slow down" per window. Message ids go in a sorted set, not a counter:
a message's rank in its window decides, so a replayed message gets the same verdict.
"""

from __future__ import annotations

import time
from enum import StrEnum

from redis.asyncio import Redis

SLOW_DOWN = (
    "You're sending messages faster than we can answer them. Please wait a minute, "
    "and we'll reply to your latest message."
)


class Verdict(StrEnum):
    ALLOW = "allow"
    WARN = "warn"  # over the limit, first time this window: send SLOW_DOWN
    DROP = "drop"  # over the limit, already warned: stay silent


class AbuseLimit:
    def __init__(self, redis: Redis, *, prefix: str, limit: int = 10, window: int = 60) -> None:
        self._redis = redis
        self._prefix = prefix
        self._limit = limit
        self._window = window

    async def check(self, business_number: str, phone: str, message_id: int) -> Verdict:
        if self._limit <= 0:
            return Verdict.ALLOW
        slot = int(time.time() // self._window)
        key = f"{self._prefix}abuse:{business_number}:{phone}:{slot}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {str(message_id): message_id}, nx=True)
            pipe.expire(key, self._window * 2)
            pipe.zrank(key, str(message_id))
            _, _, rank = await pipe.execute()
        if int(rank) < self._limit:
            return Verdict.ALLOW
        warned = await self._redis.set(f"{key}:warned", message_id, nx=True, ex=self._window * 2)
        if warned:
            return Verdict.WARN
        # The same message replayed after it was the one that warned still warns.
        holder = await self._redis.get(f"{key}:warned")
        return Verdict.WARN if holder is not None and int(holder) == message_id else Verdict.DROP
