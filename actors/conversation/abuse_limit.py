"""The per-phone abuse limit, shared by every shard on every node through Redis.

A phone may send `limit` messages per fixed window (10 a minute by default, as the seed
had it). Messages past it are stored but not answered by the LLM; the customer gets at
most one "please slow down" per window. A message's rank in its window decides
(store.abuse_counter), so a replayed message gets the same verdict. The shard's
conversations checking in one turn of the loop share one round trip (actors.coalesce).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from enum import StrEnum

from redis.asyncio import Redis

from actors.coalesce import Coalescer
from store.abuse_counter import AbuseCounter, Entry

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
        self._counter = AbuseCounter(redis, prefix=prefix, window=window)
        self._limit = limit
        self._window = window
        self._ranks: Coalescer[Entry, int] = Coalescer(self._rank_all)

    async def _rank_all(self, entries: Sequence[Entry]) -> Mapping[Entry, int]:
        return dict(zip(entries, await self._counter.ranks(entries), strict=True))

    async def check(self, business_number: str, phone: str, message_id: int) -> Verdict:
        if self._limit <= 0:
            return Verdict.ALLOW
        slot = int(time.time() // self._window)
        rank = await self._ranks.get((business_number, phone, slot, message_id))
        assert rank is not None, "every message counted is ranked"
        if rank < self._limit:
            return Verdict.ALLOW
        # The same message replayed after it was the one that warned still warns.
        warned = await self._counter.holds_warning(business_number, phone, slot, message_id)
        return Verdict.WARN if warned else Verdict.DROP
