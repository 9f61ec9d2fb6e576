"""Live events over Redis pub/sub: any process publishes, every gateway fans them out.

Events are hints for screens to refresh ("conversation 12 changed"), never the data
itself: they carry ids and states, no message text, so a lost event costs a refresh.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from redis.asyncio import Redis

log = structlog.get_logger(__name__)

CHANNEL = "live-events"


def channel(prefix: str) -> str:
    return prefix + CHANNEL


async def publish(redis: Redis | None, prefix: str, kind: str, **fields: Any) -> None:
    """Best effort: a live event must never fail the work it reports."""
    if redis is None:
        return
    try:
        await redis.publish(channel(prefix), orjson.dumps({"type": kind, **fields}))
    except Exception as exc:
        log.debug("live_event_not_published", kind=kind, error=repr(exc))
