"""Downloaded customer media, kept beside the message it came with."""

from __future__ import annotations

import asyncpg


async def save(
    conn: asyncpg.Connection,
    message_id: int,
    media_id: str,
    *,
    mime_type: str | None,
    size_bytes: int | None,
    sha256: str | None,
    content: bytes | None,
    error: str | None = None,
) -> None:
    # One transaction: a reader never sees the download without its message's media columns.
    async with conn.transaction():
        await _save(conn, message_id, media_id, mime_type, size_bytes, sha256, content, error)


async def _save(
    conn: asyncpg.Connection,
    message_id: int,
    media_id: str,
    mime_type: str | None,
    size_bytes: int | None,
    sha256: str | None,
    content: bytes | None,
    error: str | None,
) -> None:
    await conn.execute(
        """INSERT INTO media (message_id, media_id, mime_type, size_bytes, sha256, content, error)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (message_id) DO UPDATE SET
               mime_type = EXCLUDED.mime_type, size_bytes = EXCLUDED.size_bytes,
               sha256 = EXCLUDED.sha256, content = EXCLUDED.content, error = EXCLUDED.error,
               fetched_at = now()""",
        message_id,
        media_id,
        mime_type,
        size_bytes,
        sha256,
        content,
        error,
    )
    await conn.execute(
        "UPDATE messages SET media_id = $2, media_mime_type = $3 WHERE id = $1",
        message_id,
        media_id,
        mime_type,
    )
