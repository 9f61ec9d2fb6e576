"""The per-phone message counter behind the abuse limit, in Redis, shared by every shard.

Message ids go in a sorted set per fixed window, not a counter: a message's rank in its
window is stable, so a replayed message is counted once and ranks where it did before.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

# (business number, phone, window slot, message id): one message to count.
Entry = tuple[str, str, int, int]


class AbuseCounter:
    def __init__(self, redis: Redis, *, prefix: str, window: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._window = window

    def _key(self, business_number: str, phone: str, slot: int) -> str:
        return f"{self._prefix}abuse:{business_number}:{phone}:{slot}"

    async def rank(self, business_number: str, phone: str, slot: int, message_id: int) -> int:
        """Count the message in window `slot` (once); its 0-based place among the window's."""
        return (await self.ranks([(business_number, phone, slot, message_id)]))[0]

    async def ranks(self, entries: Sequence[Entry]) -> list[int]:
        """`rank` of each message, in the order given, in one round trip (one MULTI/EXEC)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for business_number, phone, slot, message_id in entries:
                key = self._key(business_number, phone, slot)
                pipe.zadd(key, {str(message_id): message_id}, nx=True)
                pipe.expire(key, self._window * 2)
                pipe.zrank(key, str(message_id))
            answers = await pipe.execute()
        return [int(rank) for rank in answers[2::3]]

    async def holds_warning(
        self, business_number: str, phone: str, slot: int, message_id: int
    ) -> bool:
        """Whether this message is the window's one warning: the first to ask, or it again."""
        key = f"{self._key(business_number, phone, slot)}:warned"
        if await self._redis.set(key, message_id, nx=True, ex=self._window * 2):
            return True
        holder = await self._redis.get(key)
        return holder is not None and int(holder) == message_id
