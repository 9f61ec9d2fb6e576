"""Downloading customers' media into Postgres, a bounded number at a time.

Each download holds up to MEDIA_MAX_BYTES in memory, and shards send batches every
half second whatever the provider's pace; the semaphore, shared by every call on one
delivery actor, keeps memory and connections flat under a flood of photos.
"""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg

from actors.delivery.providers import Provider
from actors.delivery.providers.errors import SendError
from store import media


class MediaFetcher:
    def __init__(self, *, concurrency: int, max_bytes: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._max_bytes = max_bytes

    async def fetch(
        self, pool: asyncpg.Pool, provider: Provider, items: list[tuple[int, str]]
    ) -> int:
        """(inbound message id, media id) pairs; return how many were stored whole."""
        done = await asyncio.gather(*(self._one(pool, provider, m, i) for m, i in items))
        return sum(done)

    async def _one(
        self, pool: asyncpg.Pool, provider: Provider, message_id: int, media_id: str
    ) -> bool:
        cap = self._max_bytes
        content: bytes | None = None
        mime: str | None = None
        size: int | None = None
        async with self._slots:
            try:
                fetched = await provider.fetch_media(media_id, cap)
                if fetched is None:
                    return False  # this provider has no media download: nothing to record
                content, mime, size = fetched.content, fetched.mime_type, fetched.size
                error = None if content is not None else f"over MEDIA_MAX_BYTES ({cap})"
            except SendError as exc:
                error = exc.title
            async with pool.acquire() as conn:
                await media.save(
                    conn,
                    message_id,
                    media_id,
                    mime_type=mime,
                    size_bytes=size,
                    sha256=hashlib.sha256(content).hexdigest() if content is not None else None,
                    content=content,
                    error=error,
                )
        return content is not None
