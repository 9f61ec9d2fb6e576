"""Retention: the oldest webhook log rows, status history, media files and held reports
go, a bounded batch per statement, so one sweep never holds long locks or a huge
transaction on a busy table.

Media keep their row (type, size, checksum) and lose only the file; the message still
says a photo was sent. Each batch takes a transaction-scoped advisory lock, so when
several gateways sweep, one prunes and the others skip the batch.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

# pg_try_advisory_xact_lock key of the retention sweep ("retentn" in ASCII).
LOCK_KEY = 0x726574656E746E

_STATEMENTS = {
    "webhook_log": """DELETE FROM webhook_events WHERE id IN (
            SELECT id FROM webhook_events WHERE received_at < now() - $1::interval
            ORDER BY received_at LIMIT $2)""",
    "status_history": """DELETE FROM message_statuses WHERE id IN (
            SELECT id FROM message_statuses WHERE at < now() - $1::interval
            ORDER BY at LIMIT $2)""",
    "media": """UPDATE media SET content = NULL,
                   error = 'file removed after the retention period (MEDIA_RETENTION_DAYS)'
            WHERE message_id IN (
            SELECT message_id FROM media
            WHERE content IS NOT NULL AND fetched_at < now() - $1::interval
            ORDER BY fetched_at LIMIT $2)""",
    "held_statuses": """DELETE FROM held_statuses WHERE id IN (
            SELECT id FROM held_statuses WHERE received_at < now() - $1::interval
            ORDER BY received_at LIMIT $2)""",
}
KINDS = tuple(_STATEMENTS)


async def prune_batch(
    conn: asyncpg.Connection, kind: str, older_than: timedelta, batch: int
) -> int | None:
    """Prune up to `batch` rows of `kind` older than `older_than`; how many, or None when
    another sweeper holds the lock."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
            return None
        result = await conn.execute(_STATEMENTS[kind], older_than, batch)
    return int(result.split()[-1])
