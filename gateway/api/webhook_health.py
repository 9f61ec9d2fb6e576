"""GET /api/webhooks/health: the webhook receiver's health, for an uptime check.

Readiness (/api/health) says whether the parts are up; this says whether webhooks are
being taken and answered: when the last one came, how many were refused in the last hour,
and how old the oldest stored message still waiting for its answer is. That age passing
WEBHOOK_BACKLOG_MAX_AGE_SECONDS answers 503, so a stuck pipeline pages someone even while
every part still answers its ping.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel

from gateway.api.routing import Call, Endpoint, json_response
from store import webhook_health


class WebhookHealthOut(BaseModel):
    status: str
    last_webhook_at: AwareDatetime | None
    bad_signatures_last_hour: int
    refused_last_hour: int
    backlog: int
    oldest_backlog_seconds: float | None
    backlog_max_age_seconds: float


async def webhooks_health(call: Call) -> Any:
    services = call.services
    pool = await services.pools.get()
    async with pool.acquire() as conn:
        health = await webhook_health.read(conn)
    bound = services.settings.webhook_backlog_max_age_seconds
    stuck = health.oldest_backlog_seconds is not None and health.oldest_backlog_seconds > bound
    body = WebhookHealthOut(
        status="backlogged" if stuck else "ok",
        last_webhook_at=health.last_webhook_at,
        bad_signatures_last_hour=health.bad_signatures_last_hour,
        refused_last_hour=health.refused_last_hour,
        backlog=health.backlog,
        oldest_backlog_seconds=(
            round(health.oldest_backlog_seconds, 1)
            if health.oldest_backlog_seconds is not None
            else None
        ),
        backlog_max_age_seconds=bound,
    )
    return json_response(body, 503 if stuck else 200)


ENDPOINTS = [
    Endpoint("GET", "/api/webhooks/health", webhooks_health,
             "The webhook receiver: last webhook, refusals in the last hour, inbox backlog",
             "observability", access="public", response=WebhookHealthOut,
             other_responses=((503, WebhookHealthOut),)),
]  # fmt: skip
