"""The statements every message of a shard makes, coalesced across its conversations.

Each conversation still asks for its own message (`await store.work_state.get(id)`); the
ones asking in the same turn of the loop share one statement (actors.coalesce). What must
happen under a conversation's lock, the turn's commit, is not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from actors.coalesce import Coalescer
from store import inbox
from store.inbox import WorkState


class BatchedStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.work_state: Coalescer[int, WorkState] = Coalescer(self._work_states)
        self.begin_attempt: Coalescer[int, int] = Coalescer(self._begin_attempts)
        self.mark_processed: Coalescer[int, bool] = Coalescer(self._mark_processed)

    async def _work_states(self, ids: Sequence[int]) -> Mapping[int, WorkState]:
        async with self._pool.acquire() as conn:
            return await inbox.work_states(conn, ids)

    async def _begin_attempts(self, ids: Sequence[int]) -> Mapping[int, int]:
        async with self._pool.acquire() as conn:
            return await inbox.begin_attempts(conn, ids)

    async def _mark_processed(self, ids: Sequence[int]) -> Mapping[int, bool]:
        async with self._pool.acquire() as conn:
            await inbox.mark_processed(conn, ids)
        return dict.fromkeys(ids, True)
