"""A ConversationShard hosted in the test process, talking to the session's real Ray
LLM and delivery actors, Postgres and Redis, so a test can reach into its conversations
and delay or break one step deterministically.

It owns its phones by a wide hash (one shard of many), so its replay never picks up
another test's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from actors.conversation.placement import shard_for
from actors.conversation.shard import ConversationShard
from actors.runtime import actor_names
from config import Settings
from store.records import InboxItem
from tests.support import eventually

WIDE = 4096


@contextlib.asynccontextmanager
async def local_shard(
    settings: Settings, phone: str, **overrides: Any
) -> AsyncIterator[ConversationShard]:
    s = settings.model_copy(update={"message_retry_base_seconds": 0.01, **overrides})
    shard = ConversationShard(
        s,
        shard_for(phone, WIDE),
        WIDE,
        s.database_url or "",
        s.redis_url or "",
        actor_names(s).llm,
        actor_names(s).delivery,
    )
    try:
        yield shard
    finally:
        for conv in list(shard._conversations.values()):
            conv.cancel()
        for task in list(shard._background):
            task.cancel()
        await asyncio.sleep(0)
        if shard._started is not None and shard._started.done():
            await shard._pool.close()
            await shard._redis.aclose()


async def wait_processed(db: asyncpg.Pool, *items: InboxItem, within: float = 20.0) -> None:
    ids = [i.message_id for i in items]

    async def done() -> bool:
        open_ = await db.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::bigint[]) AND processed_at IS NULL",
            ids,
        )
        return int(open_) == 0

    await eventually(done, within=within)
