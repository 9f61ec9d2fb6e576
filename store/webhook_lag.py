"""How late Meta's status webhooks reach us: the age of the statuses the gateways store.

A send whose answer was lost (a timeout after the request went out) is an unknown
outcome; its status webhook, echoing our callback data, says whether Meta took it
(DESIGN.md §3). The ledger waits UNKNOWN_SEND_WAIT_SECONDS for that webhook before
sending again. When the webhooks themselves arrive late (our gateways saturated, Meta
retrying slowly), a fixed wait resends messages Meta did take: the customer gets the
reply twice. So the gateways publish how old the statuses they store are, and the wait
for an unknown outcome grows with it (actors.delivery.ledger_send).

Only the latest age is kept, with a short expiry: lag that stops being reported (no
statuses flowing) stops lengthening the waits.
"""

from __future__ import annotations

import structlog
from redis.asyncio import Redis

from store.live_events import RedisCommand

log = structlog.get_logger(__name__)

KEY = "webhook-lag"
# A lag not refreshed for this long no longer counts.
EXPIRES_SECONDS = 120


def record_command(prefix: str, seconds: float) -> RedisCommand:
    """The write of the statuses' age, for the announcer's pipeline."""
    return ("set", (prefix + KEY, f"{max(0.0, seconds):.1f}"), {"ex": EXPIRES_SECONDS})


async def current(redis: Redis | None, prefix: str) -> float:
    """The latest reported age in seconds; 0 when none is known or Redis is away (the
    configured wait then stands alone, as before this signal existed)."""
    if redis is None:
        return 0.0
    try:
        raw = await redis.get(prefix + KEY)
        return float(raw) if raw is not None else 0.0
    except Exception as exc:
        log.debug("webhook_lag_unread", error=repr(exc))
        return 0.0


async def unknown_send_wait(redis: Redis | None, prefix: str, base: float, bound: float) -> float:
    """How long an unknown outcome waits for its status webhook before it goes again:
    `base` (UNKNOWN_SEND_WAIT_SECONDS), or twice the statuses' current lag if that is
    longer, but never past `bound` (UNKNOWN_SEND_WAIT_MAX_SECONDS)."""
    lag = await current(redis, prefix)
    return min(max(base, 2 * lag), max(base, bound))
