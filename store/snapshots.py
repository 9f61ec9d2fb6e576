"""Conversation state snapshots in Redis, with a TTL.

Redis is a cache here: a missing or expired snapshot is rebuilt from Postgres history.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from store.live_events import RedisCommand
from store.records import ConversationSnapshot, Turn


class SnapshotStore:
    def __init__(self, redis: Redis, *, prefix: str = "wa:", ttl_seconds: int = 3600) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    def key(self, business_number: str, customer_phone: str) -> str:
        return f"{self._prefix}conv:{business_number}:{customer_phone}"

    async def load(self, business_number: str, customer_phone: str) -> ConversationSnapshot | None:
        raw = await self._redis.get(self.key(business_number, customer_phone))
        if raw is None:
            return None
        data: dict[str, Any] = orjson.loads(raw)
        return ConversationSnapshot(
            conversation_id=data["conversation_id"],
            business_number=data["business_number"],
            customer_phone=data["customer_phone"],
            history=[Turn(role=t["role"], text=t["text"]) for t in data["history"]],
            last_message_id=data["last_message_id"],
        )

    async def save(self, snapshot: ConversationSnapshot) -> None:
        name, args, kwargs = self.save_command(snapshot)
        await getattr(self._redis, name)(*args, **kwargs)

    def save_command(self, snapshot: ConversationSnapshot) -> RedisCommand:
        """The SET that saves the snapshot, for a caller that pipelines it."""
        payload = orjson.dumps(
            {
                "conversation_id": snapshot.conversation_id,
                "business_number": snapshot.business_number,
                "customer_phone": snapshot.customer_phone,
                "history": [{"role": t.role, "text": t.text} for t in snapshot.history],
                "last_message_id": snapshot.last_message_id,
            }
        )
        key = self.key(snapshot.business_number, snapshot.customer_phone)
        return ("set", (key, payload), {"ex": self._ttl})

    async def delete(self, business_number: str, customer_phone: str) -> None:
        await self._redis.delete(self.key(business_number, customer_phone))
