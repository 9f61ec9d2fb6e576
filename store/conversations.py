"""Conversation rows and the history a virtual conversation actor is rebuilt from."""

from __future__ import annotations

import asyncpg

from store.records import Turn


async def state_of(conn: asyncpg.Connection, conversation_id: int) -> str | None:
    value = await conn.fetchval("SELECT state FROM conversations WHERE id = $1", conversation_id)
    return str(value) if value is not None else None


async def recent_turns(conn: asyncpg.Connection, conversation_id: int, limit: int) -> list[Turn]:
    """The last `limit` text turns, oldest first, for an LLM's context."""
    rows = await conn.fetch(
        """SELECT direction, text FROM (
               SELECT id, direction, text FROM messages
               WHERE conversation_id = $1 AND text IS NOT NULL AND text <> ''
                 AND (direction = 'inbound' OR status <> 'failed')
               ORDER BY id DESC LIMIT $2) recent
           ORDER BY id""",
        conversation_id,
        limit,
    )
    return [
        Turn(role="user" if r["direction"] == "inbound" else "assistant", text=r["text"])
        for r in rows
    ]
