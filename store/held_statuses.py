"""Delivery reports held until the send they report on is recorded (MSG91).

The race: MSG91 answers our send with its request id, and its delivery-report webhook can
reach another gateway before the delivery actor has written that id down. A report that
matches no row is held here (MSG91's only: a Cloud API status names our callback data,
which resolves it at once), and applied when the id is recorded.

Both sides take a transaction-scoped advisory lock per id, so a report is either seen by
the recording (held before it) or sees the recorded id itself, never neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from config.vocabulary import ProviderName
from store.records import StatusUpdate

PREFIX = f"{ProviderName.MSG91}:"


def held_kind(provider_message_ids: Sequence[str]) -> list[str]:
    """The ids whose reports may come early, sorted (the lock order, so no deadlock)."""
    return sorted({i for i in provider_message_ids if i.startswith(PREFIX)})


async def _lock(conn: asyncpg.Connection, ids: list[str]) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(wamid, 0))"
        " FROM unnest($1::text[]) AS u(wamid)",
        ids,
    )


async def hold_unknown(conn: asyncpg.Connection, statuses: Sequence[StatusUpdate]) -> int:
    """Hold the reports whose send is not recorded yet; call inside the transaction that
    applies them. Return how many were held."""
    ids = held_kind([s.provider_message_id for s in statuses])
    if not ids:
        return 0
    await _lock(conn, ids)
    unknown = await conn.fetch(
        """SELECT u.wamid FROM unnest($1::text[]) AS u(wamid)
           WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.provider_message_id = u.wamid)
             AND NOT EXISTS (SELECT 1 FROM send_parts p
                             WHERE p.provider_message_id = u.wamid)""",
        ids,
    )
    held = {r["wamid"] for r in unknown}
    early = [s for s in statuses if s.provider_message_id in held]
    if early:
        await conn.execute(
            """INSERT INTO held_statuses (provider_message_id, status, error_code, error_title,
                                          status_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[],
                                    $5::timestamptz[])""",
            [s.provider_message_id for s in early],
            [s.status for s in early],
            [s.error_code for s in early],
            [(s.error_title or "")[:500] or None for s in early],
            [s.timestamp for s in early],
        )
    return len(early)


async def take(conn: asyncpg.Connection, provider_message_ids: Sequence[str]) -> list[StatusUpdate]:
    """Remove and return the held reports of these (now recorded) ids; call inside a
    transaction, which then applies them."""
    ids = held_kind(provider_message_ids)
    if not ids:
        return []
    await _lock(conn, ids)
    return _updates(
        await conn.fetch(
            """DELETE FROM held_statuses WHERE provider_message_id = ANY($1::text[])
               RETURNING provider_message_id, status, error_code, error_title, status_at""",
            ids,
        )
    )


async def take_recorded(conn: asyncpg.Connection, limit: int) -> list[StatusUpdate]:
    """Held reports whose id is recorded by now, should the recording have missed them."""
    rows = await conn.fetch(
        """DELETE FROM held_statuses h WHERE h.id IN (
               SELECT h2.id FROM held_statuses h2
               WHERE EXISTS (SELECT 1 FROM messages m
                             WHERE m.provider_message_id = h2.provider_message_id)
               ORDER BY h2.id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING provider_message_id, status, error_code, error_title, status_at""",
        limit,
    )
    return _updates(rows)


def _updates(rows: Sequence[asyncpg.Record]) -> list[StatusUpdate]:
    return [
        StatusUpdate(
            provider_message_id=r["provider_message_id"],
            status=r["status"],
            timestamp=r["status_at"],
            error_code=r["error_code"],
            error_title=r["error_title"],
        )
        for r in rows
    ]
