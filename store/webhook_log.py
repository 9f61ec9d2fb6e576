"""The webhook event log: one row per delivery, whatever its outcome."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from store.records import WebhookEvent


async def record(conn: asyncpg.Connection, events: Sequence[WebhookEvent]) -> None:
    if not events:
        return
    # One statement for the whole batch: this runs inside the webhook group commit.
    await conn.execute(
        """INSERT INTO webhook_events (source, kind, outcome, http_status, latency_ms,
                                       message_count, status_count, detail)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::real[],
                                $6::int[], $7::int[], $8::text[])""",
        [e.source for e in events],
        [e.kind for e in events],
        [e.outcome for e in events],
        [e.http_status for e in events],
        [e.latency_ms for e in events],
        [e.message_count for e in events],
        [e.status_count for e in events],
        [(e.detail or "")[:500] or None for e in events],
    )
