"""Canned responses: short texts an operator inserts from the reply box."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class CannedResponse:
    id: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime


class TitleTaken(Exception):
    """Another canned response already has this title."""


_COLUMNS = "id, title, body, created_at, updated_at"


async def all_responses(conn: asyncpg.Connection) -> list[CannedResponse]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM canned_responses ORDER BY title, id")
    return [CannedResponse(**dict(r)) for r in rows]


async def get(conn: asyncpg.Connection, canned_id: int) -> CannedResponse | None:
    r = await conn.fetchrow(f"SELECT {_COLUMNS} FROM canned_responses WHERE id = $1", canned_id)
    return CannedResponse(**dict(r)) if r is not None else None


async def create(conn: asyncpg.Connection, title: str, body: str, user_id: int) -> CannedResponse:
    try:
        r = await conn.fetchrow(
            f"""INSERT INTO canned_responses (title, body, created_by) VALUES ($1, $2, $3)
                RETURNING {_COLUMNS}""",
            title,
            body,
            user_id,
        )
    except asyncpg.UniqueViolationError as exc:
        raise TitleTaken(title) from exc
    return CannedResponse(**dict(r))


async def update(
    conn: asyncpg.Connection, canned_id: int, title: str, body: str
) -> CannedResponse | None:
    try:
        r = await conn.fetchrow(
            f"""UPDATE canned_responses SET title = $2, body = $3, updated_at = now()
                WHERE id = $1 RETURNING {_COLUMNS}""",
            canned_id,
            title,
            body,
        )
    except asyncpg.UniqueViolationError as exc:
        raise TitleTaken(title) from exc
    return CannedResponse(**dict(r)) if r is not None else None


async def delete(conn: asyncpg.Connection, canned_id: int) -> bool:
    result = await conn.execute("DELETE FROM canned_responses WHERE id = $1", canned_id)
    return bool(result.endswith(" 1"))
