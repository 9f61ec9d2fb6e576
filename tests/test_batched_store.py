"""A shard's conversations asking at once share one statement, and each gets its answer."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from redis.asyncio import Redis

from actors.conversation.abuse_limit import AbuseLimit, Verdict
from actors.conversation.batched_store import BatchedStore
from tests.inbox_rows import store_texts
from tests.support import new_phone


async def test_fifty_conversations_reading_their_work_state_at_once_make_one_statement(
    db: asyncpg.Pool, redis: Redis
) -> None:
    items = [(await store_texts(db, new_phone(), f"question {n}"))[0] for n in range(50)]
    store = BatchedStore(db, redis)
    states = await asyncio.gather(*(store.work_state.get(i.message_id) for i in items))
    assert store.work_state.statements == 1
    assert all(s is not None and not s.processed and s.first_message for s in states)

    tries = await asyncio.gather(*(store.begin_attempt.get(i.message_id) for i in items))
    assert tries == [1] * 50 and store.begin_attempt.statements == 1
    half = items[:25]
    await asyncio.gather(*(store.mark_processed.get(i.message_id) for i in half))
    after = await asyncio.gather(*(store.work_state.get(i.message_id) for i in items))
    assert [s.processed for s in after if s] == [True] * 25 + [False] * 25
    assert await store.work_state.get(2**62) is None  # no such message: no answer, no error


async def test_a_failed_statement_fails_every_caller_of_its_batch(
    database_url: str, redis: Redis
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    store = BatchedStore(pool, redis)
    await pool.close()  # the statement will fail, as it would with Postgres gone
    results = await asyncio.gather(
        *(store.work_state.get(n) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, asyncpg.InterfaceError) for r in results)
    with pytest.raises(asyncpg.InterfaceError):
        await store.work_state.get(1)


async def test_redis_writes_of_conversations_finishing_together_go_in_one_pipeline(
    db: asyncpg.Pool, redis: Redis, redis_prefix: str
) -> None:
    store = BatchedStore(db, redis)
    keys = [f"{redis_prefix}batched:{n}" for n in range(30)]
    await asyncio.gather(
        *(store.redis(("set", (k, b"1"), {"ex": 60}), ("incr", (k,), {})) for k in keys)
    )
    assert store._redis_writes.statements == 1
    assert [int(v) for v in await redis.mget(keys)] == [2] * 30  # each caller's own order


async def test_fifty_conversations_checking_the_abuse_limit_at_once_share_one_round_trip(
    redis: Redis, redis_prefix: str
) -> None:
    limit = AbuseLimit(redis, prefix=f"{redis_prefix}{uuid.uuid4().hex[:6]}:", limit=2)
    phones = [new_phone() for _ in range(50)]
    verdicts = await asyncio.gather(*(limit.check("b", p, 1) for p in phones))
    assert verdicts == [Verdict.ALLOW] * 50 and limit._ranks.statements == 1
    # Each phone is counted on its own, in its message order, within the shared round trip.
    busy = phones[0]
    later = await asyncio.gather(*(limit.check("b", busy, n) for n in (2, 3, 4)))
    assert later[0] is Verdict.ALLOW and sorted(later[1:]) == [Verdict.DROP, Verdict.WARN]
    assert limit._ranks.statements == 2
    assert await limit.check("b", phones[1], 2) is Verdict.ALLOW
