"""The statements every message of a shard makes, coalesced across its conversations:
Postgres reads and writes, and the Redis writes after a turn (live event, snapshot).

Each conversation still asks for its own message (`await store.work_state.get(id)`); the
ones asking in the same turn of the loop share one statement (actors.coalesce). The
turns' commits, which happen under their conversations' locks, share one transaction
(actors.conversation.batched_commit).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import asyncpg
from redis.asyncio import Redis

from actors.coalesce import Coalescer
from actors.conversation.batched_commit import BatchedCommit
from actors.conversation.turn_plan import Committed, TurnPlan
from store import inbox
from store.inbox import WorkState
from store.live_events import RedisCommand
from store.records import InboxItem


class BatchedStore:
    def __init__(self, pool: asyncpg.Pool, redis: Redis) -> None:
        self._pool = pool
        self._redis = redis
        self._writes: dict[int, Sequence[RedisCommand]] = {}
        self._write_ids = itertools.count()
        self._redis_writes: Coalescer[int, bool] = Coalescer(self._send_writes)
        self.work_state: Coalescer[int, WorkState] = Coalescer(self._work_states)
        self.begin_attempt: Coalescer[int, int] = Coalescer(self._begin_attempts)
        self.mark_processed: Coalescer[int, bool] = Coalescer(self._mark_processed)
        self.commits = BatchedCommit(pool)

    async def commit_turn(self, item: InboxItem, plan: TurnPlan) -> Committed:
        """Commit the turn, in the transaction of the shard's turns finishing with it."""
        return await self.commits.commit(item, plan)

    async def redis(self, *commands: RedisCommand) -> None:
        """Send these Redis writes in the pipeline of this turn of the loop, in order."""
        key = next(self._write_ids)
        self._writes[key] = commands
        await self._redis_writes.get(key)

    async def _send_writes(self, keys: Sequence[int]) -> Mapping[int, bool]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            for name, args, kwargs in self._writes.pop(key):
                getattr(pipe, name)(*args, **kwargs)
        await pipe.execute()
        return dict.fromkeys(keys, True)

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
