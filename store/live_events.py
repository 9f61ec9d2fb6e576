"""Live events over Redis pub/sub: any process publishes, every gateway fans them out.

Events are hints for screens to refresh ("conversation 12 changed"), never the data
itself: they carry ids and states, no message text, so a lost event costs a refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = structlog.get_logger(__name__)

# One Redis write as data, (method name, args, kwargs), to be sent later in a pipeline.
RedisCommand = tuple[str, tuple[Any, ...], dict[str, Any]]

CHANNEL = "live-events"
# A reply the 24-hour window kept from going out, with the reason in words.
REPLY_REFUSED = "reply.refused"


# Events every gateway must hear even with no dashboard open (to put them in its log).
NOTICES = "live-notices"
NOTICE_KINDS = frozenset({REPLY_REFUSED})


def channel(prefix: str) -> str:
    return prefix + CHANNEL


def notices_channel(prefix: str) -> str:
    return prefix + NOTICES


def encode(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, **fields})


async def publish(redis: Redis | None, prefix: str, kind: str, **fields: Any) -> None:
    """Best effort: a live event must never fail the work it reports."""
    if redis is None:
        return
    data = encode(kind, **fields)
    try:
        if kind in NOTICE_KINDS:
            await publish_kinds(redis, prefix, [(kind, data)])
        else:
            await redis.publish(channel(prefix), data)
    except Exception as exc:
        log.debug("live_event_not_published", kind=kind, error=repr(exc))


def publish_command(prefix: str, kind: str, **fields: Any) -> RedisCommand:
    """The PUBLISH of one event, for a caller that pipelines it with other writes."""
    return ("publish", (channel(prefix), encode(kind, **fields)), {})


async def publish_encoded(redis: Redis, prefix: str, events: Sequence[bytes]) -> None:
    """Many encoded events, none of them a notice, in one round trip; errors are the
    caller's to handle."""
    await publish_kinds(redis, prefix, [("", data) for data in events])


async def publish_kinds(redis: Redis, prefix: str, events: Sequence[tuple[str, bytes]]) -> None:
    """(kind, encoded event) pairs in one round trip, each on the channels its kind goes
    to: every event on the live channel, NOTICE_KINDS on the notices channel too."""
    async with redis.pipeline(transaction=False) as pipe:
        for kind, data in events:
            pipe.publish(channel(prefix), data)
            if kind in NOTICE_KINDS:
                pipe.publish(notices_channel(prefix), data)
        await pipe.execute()


CLOSE_TIMEOUT_SECONDS = 2.0


@contextlib.asynccontextmanager
async def subscription(redis: Redis, name: str) -> AsyncIterator[AsyncIterator[bytes]]:
    """Subscribed to the channel `name` on entry; yields the payloads as they arrive."""
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(name)
        yield _payloads(pubsub)
    finally:
        # Bounded, and never cancelled: cancelled mid-read, redis-py's close can wait on
        # the connection it was reading from and ignore a cancel, so `wait_for` would hang
        # a gateway's shutdown with it. A close that lags finishes in the background.
        closing = asyncio.ensure_future(pubsub.aclose())  # type: ignore[no-untyped-call]
        closing.add_done_callback(_quietly)
        await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT_SECONDS)


async def _payloads(pubsub: PubSub) -> AsyncIterator[bytes]:
    async for message in pubsub.listen():
        data = message.get("data")
        if isinstance(data, bytes):
            yield data


def _quietly(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed close of a dropped subscription is no news
