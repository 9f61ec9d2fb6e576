"""The webhook event log: one row per delivery, whatever its outcome."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from store.records import WebhookEvent


async def record(conn: asyncpg.Connection, events: Sequence[WebhookEvent]) -> None:
    if not events:
        return
    await conn.executemany(
        """INSERT INTO webhook_events (source, kind, outcome, http_status, latency_ms,
                                       message_count, status_count, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        [
            (
                e.source,
                e.kind,
                e.outcome,
                e.http_status,
                e.latency_ms,
                e.message_count,
                e.status_count,
                (e.detail or "")[:500] or None,
            )
            for e in events
        ],
    )


async def recent(conn: asyncpg.Connection, limit: int = 100) -> list[WebhookEvent]:
    rows = await conn.fetch(
        """SELECT source, kind, outcome, http_status, latency_ms, message_count, status_count,
                  detail
           FROM webhook_events ORDER BY id DESC LIMIT $1""",
        limit,
    )
    return [WebhookEvent(**dict(r)) for r in rows]
