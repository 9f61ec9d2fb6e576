"""What a webhook carries besides inbound messages and statuses: unparsed parts and the
operator-relevant account events (gateway.whatsapp.fields). Written in the group commit,
one statement per table and only when a batch has any; read by the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from store.records import AccountEvent, UnparsedItem

# Raw parts are for reading by a person; past this they are cut (and say so).
MAX_RAW_CHARS = 64_000


async def record_unparsed(conn: asyncpg.Connection, items: Sequence[UnparsedItem]) -> None:
    if not items:
        return
    await conn.execute(
        """INSERT INTO webhook_unparsed (source, field, error, raw)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])""",
        [i.source for i in items],
        [i.field for i in items],
        [i.error for i in items],
        [_cut(i.raw) for i in items],
    )


async def record_account_events(conn: asyncpg.Connection, events: Sequence[AccountEvent]) -> None:
    if not events:
        return
    await conn.execute(
        """INSERT INTO account_events (field, account_id, subject, event, detail, digest)
           SELECT f, a, s, e, d::jsonb, g
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                AS t(f, a, s, e, d, g)
           ON CONFLICT (digest) DO NOTHING""",
        [e.field for e in events],
        [e.account_id for e in events],
        [e.subject for e in events],
        [e.event for e in events],
        [orjson.dumps(e.detail).decode() for e in events],
        [e.digest for e in events],
    )


def _cut(raw: str) -> str:
    return raw if len(raw) <= MAX_RAW_CHARS else raw[:MAX_RAW_CHARS] + "…(cut)"


@dataclass(frozen=True, slots=True)
class AccountEventRow:
    id: int
    received_at: datetime
    field: str
    account_id: str | None
    subject: str | None
    event: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UnparsedRow:
    id: int
    received_at: datetime
    source: str
    field: str
    error: str
    raw: str


async def recent_account_events(
    conn: asyncpg.Connection, *, field: str | None = None, limit: int = 50
) -> list[AccountEventRow]:
    rows = await conn.fetch(
        """SELECT id, received_at, field, account_id, subject, event, detail
           FROM account_events WHERE ($1::text IS NULL OR field = $1)
           ORDER BY id DESC LIMIT $2""",
        field,
        limit,
    )
    return [AccountEventRow(**{**dict(r), "detail": _as_dict(r["detail"])}) for r in rows]


async def recent_unparsed(conn: asyncpg.Connection, *, limit: int = 50) -> list[UnparsedRow]:
    rows = await conn.fetch(
        """SELECT id, received_at, source, field, error, raw FROM webhook_unparsed
           ORDER BY id DESC LIMIT $1""",
        limit,
    )
    return [UnparsedRow(**dict(r)) for r in rows]


def _as_dict(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {"value": value}
