"""The operators' view of the webhook log: recent deliveries, newest first, keyset-paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class WebhookLogEntry:
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


async def recent(
    conn: asyncpg.Connection,
    *,
    outcome: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[WebhookLogEntry]:
    rows = await conn.fetch(
        """SELECT id, received_at, source, kind, outcome, http_status, latency_ms,
                  message_count, status_count, detail
           FROM webhook_events
           WHERE ($1::text IS NULL OR outcome = $1) AND ($2::bigint IS NULL OR id < $2)
           ORDER BY id DESC LIMIT $3""",
        outcome,
        before_id,
        limit,
    )
    return [WebhookLogEntry(**dict(r)) for r in rows]
