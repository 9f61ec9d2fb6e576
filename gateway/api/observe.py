"""The webhook log and the operational stats the dashboard shows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gateway.api.routing import Call, Endpoint
from store import stats as store_stats
from store import webhook_log_views

Outcome = Literal["stored", "duplicate", "partial", "bad_signature", "malformed", "rejected",
                  "too_large", "unavailable", "draining"]  # fmt: skip


class WebhookLogQuery(BaseModel):
    outcome: Outcome | None = None
    before: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=100, ge=1, le=500)


class WebhookLogEntryOut(BaseModel):
    id: int
    received_at: datetime
    source: str
    kind: str
    outcome: str
    http_status: int
    latency_ms: float | None
    message_count: int
    status_count: int
    detail: str | None


class WebhookLogPage(BaseModel):
    events: list[WebhookLogEntryOut] = Field(description="Newest first")
    next_before: int | None


class StatsQuery(BaseModel):
    minutes: int = Field(default=60, ge=1, le=24 * 60)


class MinuteOut(BaseModel):
    minute: datetime
    inbound: int
    outbound: int


class StatsOut(BaseModel):
    minutes: int
    per_minute: list[MinuteOut]
    reply_latency_p50_ms: float | None
    reply_latency_p95_ms: float | None
    llm_replies: int
    llm_fallbacks: int
    llm_fallback_rate: float | None
    delivery_failures_by_code: dict[str, int]
    conversations_by_state: dict[str, int]
    needs_human: int


async def webhook_log(call: Call) -> WebhookLogPage:
    q: WebhookLogQuery = call.query
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        rows = await webhook_log_views.recent(
            conn, outcome=q.outcome, before_id=q.before, limit=q.limit + 1
        )
    page = rows[: q.limit]
    return WebhookLogPage(
        events=[WebhookLogEntryOut.model_validate(r, from_attributes=True) for r in page],
        next_before=page[-1].id if len(rows) > q.limit else None,
    )


async def stats(call: Call) -> StatsOut:
    q: StatsQuery = call.query
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        s = await store_stats.compute(
            conn, minutes=q.minutes, primary_model=call.services.settings.openrouter_primary_model
        )
    return StatsOut(
        minutes=q.minutes,
        per_minute=[MinuteOut.model_validate(m, from_attributes=True) for m in s.per_minute],
        reply_latency_p50_ms=s.reply_latency_p50_ms,
        reply_latency_p95_ms=s.reply_latency_p95_ms,
        llm_replies=s.llm_replies,
        llm_fallbacks=s.llm_fallbacks,
        llm_fallback_rate=s.llm_fallbacks / s.llm_replies if s.llm_replies else None,
        delivery_failures_by_code=s.delivery_failures,
        conversations_by_state=s.conversations_by_state,
        needs_human=s.needs_human,
    )


ENDPOINTS = [
    Endpoint("GET", "/api/webhook-events", webhook_log,
             "Recent webhook deliveries: time, type, outcome, latency (no secrets, no text)",
             "observability", query=WebhookLogQuery, response=WebhookLogPage),
    Endpoint("GET", "/api/stats", stats,
             "Messages per minute, reply latency, LLM fallback rate, failures, open states",
             "observability", query=StatsQuery, response=StatsOut),
]  # fmt: skip
