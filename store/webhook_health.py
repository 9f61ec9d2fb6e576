"""How the webhook receiver is doing, from the webhook log and the inbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    last_webhook_at: datetime | None
    bad_signatures_last_hour: int
    refused_last_hour: int  # answered 4xx or 5xx: Meta retries or gives up on these
    backlog: int  # inbound messages stored but not yet processed
    oldest_backlog_seconds: float | None


async def read(conn: asyncpg.Connection) -> WebhookHealth:
    log = await conn.fetchrow(
        """SELECT (SELECT max(received_at) FROM webhook_events) AS last_at,
                  count(*) FILTER (WHERE outcome = 'bad_signature') AS bad_signatures,
                  count(*) FILTER (WHERE http_status >= 400) AS refused
           FROM webhook_events WHERE received_at > now() - interval '1 hour'"""
    )
    inbox = await conn.fetchrow(
        """SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS oldest
           FROM messages WHERE direction = 'inbound' AND processed_at IS NULL"""
    )
    assert log is not None and inbox is not None
    return WebhookHealth(
        last_webhook_at=log["last_at"],
        bad_signatures_last_hour=int(log["bad_signatures"]),
        refused_last_hour=int(log["refused"]),
        backlog=int(inbox["n"]),
        oldest_backlog_seconds=float(inbox["oldest"]) if inbox["oldest"] is not None else None,
    )
