"""Live events over Redis pub/sub: any process publishes, every gateway fans them out.

Events are hints for screens to refresh ("conversation 12 changed"), never the data
itself: they carry ids and states, no message text, so a lost event costs a refresh.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = structlog.get_logger(__name__)

CHANNEL = "live-events"


def channel(prefix: str) -> str:
    return prefix + CHANNEL


def encode(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, **fields})


async def publish(redis: Redis | None, prefix: str, kind: str, **fields: Any) -> None:
    """Best effort: a live event must never fail the work it reports."""
    if redis is None:
        return
    try:
        await redis.publish(channel(prefix), encode(kind, **fields))
    except Exception as exc:
        log.debug("live_event_not_published", kind=kind, error=repr(exc))


async def publish_encoded(redis: Redis, prefix: str, events: Sequence[bytes]) -> None:
    """Many encoded events in one round trip; errors are the caller's to handle."""
    async with redis.pipeline(transaction=False) as pipe:
        for data in events:
            pipe.publish(channel(prefix), data)
        await pipe.execute()


@contextlib.asynccontextmanager
async def subscription(redis: Redis, prefix: str) -> AsyncIterator[AsyncIterator[bytes]]:
    """Subscribed to the channel on entry; yields the events' payloads as they arrive."""
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel(prefix))
        yield _payloads(pubsub)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _payloads(pubsub: PubSub) -> AsyncIterator[bytes]:
    async for message in pubsub.listen():
        data = message.get("data")
        if isinstance(data, bytes):
            yield data
