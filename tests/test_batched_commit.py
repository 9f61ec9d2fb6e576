"""The turns of many conversations finishing together commit in one transaction.

Far fewer statements than one transaction per turn, yet each reply is reserved exactly
once, a later message of a conversation still waits for its earlier one, one bad turn
fails only itself, and a lost connection makes every turn of the batch wait (DESIGN.md §3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from actors.conversation import shard as shard_module
from actors.conversation.batched_commit import BatchedCommit
from actors.conversation.turn_plan import Committed, TurnPlan
from actors.outages import is_outage
from config import Settings
from config.vocabulary import ProviderName
from store import inbox
from store.db import _init_connection, _keep_session
from store.outbound import NewReply
from store.records import InboxItem
from tests.inbox_rows import store_inbound, store_texts
from tests.local_shard import local_shard, wait_processed
from tests.support import eventually, new_phone

TURN_LOCK_SPACE = 21
STATEMENTS_PER_TURN_ALONE = 5  # BEGIN, lock, gate, reserve, COMMIT


@contextlib.asynccontextmanager
async def counting_pool(
    database_url: str, size: int = 4
) -> AsyncIterator[tuple[asyncpg.Pool, list[str]]]:
    """A pool like the shard's whose connections log every statement they send."""
    sent: list[str] = []

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        conn.add_query_logger(lambda q: sent.append(q.query))

    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=size, init=init, reset=_keep_session
    )
    try:
        yield pool, sent
    finally:
        pool.terminate()


def _reply(item: InboxItem, text: str) -> TurnPlan:
    return TurnPlan(
        reply=NewReply(
            item.conversation_id, item.message_id, text, provider=ProviderName.WHATSAPP_CLOUD
        )
    )


async def _fifty_conversations(db: asyncpg.Pool) -> list[InboxItem]:
    return await store_inbound(db, [(new_phone(), "text", f"question {n}") for n in range(50)])


async def _replies_of(db: asyncpg.Pool, items: list[InboxItem]) -> dict[int, list[str]]:
    rows = await db.fetch(
        "SELECT reply_to_id, text FROM messages WHERE reply_to_id = ANY($1::bigint[])",
        [i.message_id for i in items],
    )
    found: dict[int, list[str]] = {i.message_id: [] for i in items}
    for r in rows:
        found[r["reply_to_id"]].append(r["text"])
    return found


async def test_fifty_turns_finishing_together_commit_in_a_handful_of_statements_each_reply_once(
    db: asyncpg.Pool, database_url: str
) -> None:
    items = await _fifty_conversations(db)
    plans = {i.message_id: _reply(i, f"answer {n}") for n, i in enumerate(items)}
    # The rare turns ride along: five hand-offs, five with nothing to answer.
    for i in items[:5]:
        plans[i.message_id].handoff = "customer_asked"
    for i in items[5:10]:
        plans[i.message_id] = TurnPlan()
    async with counting_pool(database_url, size=1) as (pool, sent):
        commits = BatchedCommit(pool)
        # asyncpg asks Postgres about the array types once per connection: not per turn.
        warm = await store_inbound(db, [(new_phone(), "text", "warm up") for _ in range(2)])
        await asyncio.gather(*(commits.commit(i, _reply(i, "warm")) for i in warm))
        sent.clear()
        done = await asyncio.gather(*(commits.commit(i, plans[i.message_id]) for i in items))
        statements = len(sent)

        assert commits.batches == 2 and commits.fallbacks == 0
        # BEGIN, locks, gate, 5 hand-offs, one INSERT, one UPDATE, COMMIT.
        assert statements <= 7 + 5, sent
        assert statements * 10 < STATEMENTS_PER_TURN_ALONE * len(items)
        replies = await _replies_of(db, items)
        for n, (item, committed) in enumerate(zip(items, done, strict=True)):
            if 5 <= n < 10:
                assert committed == Committed(processed=True) and replies[item.message_id] == []
            else:
                assert committed.reply is not None and committed.reply.text == f"answer {n}"
                assert committed.reply.status == "pending"
                assert replies[item.message_id] == [f"answer {n}"]
        handed = await db.fetchval(
            "SELECT count(*) FROM conversations WHERE id = ANY($1::bigint[]) AND state = 'human'",
            [i.conversation_id for i in items],
        )
        assert handed == 5
        processed = await db.fetchval(
            """SELECT count(*) FROM messages
               WHERE id = ANY($1::bigint[]) AND processed_at IS NOT NULL""",
            [i.message_id for i in items],
        )
        assert processed == 5  # only the silent ones: the others are processed once sent

        # A commit retried after its answer was lost finds each reply, and makes none.
        again = await asyncio.gather(
            *(commits.commit(i, _reply(i, "a second answer")) for i in items)
        )
    assert [c.reply.id if c.reply else None for c in again] == [
        c.reply.id if c.reply else None for c in done
    ]
    assert await _replies_of(db, items) == replies


async def test_of_two_messages_of_one_conversation_in_a_batch_the_later_waits_for_the_earlier(
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    first, second = await store_texts(db, phone, "first", "second")
    [other] = await store_texts(db, new_phone(), "someone else")
    commits = BatchedCommit(db)
    done = await asyncio.gather(
        commits.commit(second, _reply(second, "answer to second")),
        commits.commit(first, _reply(first, "answer to first")),
        commits.commit(other, _reply(other, "answer to someone else")),
    )
    assert commits.batches == 1
    later, earlier, elsewhere = done
    assert later == Committed(blocked_by=first.message_id)
    assert earlier.reply is not None and earlier.reply.text == "answer to first"
    assert elsewhere.reply is not None
    assert await _replies_of(db, [first, second]) == {
        first.message_id: ["answer to first"],
        second.message_id: [],
    }


async def test_a_turn_postgres_refuses_fails_alone_and_the_rest_of_its_batch_commits(
    db: asyncpg.Pool,
) -> None:
    items = await store_inbound(db, [(new_phone(), "text", f"q {n}") for n in range(10)])
    bad = items[3]
    commits = BatchedCommit(db)
    done = await asyncio.gather(
        *(
            commits.commit(i, _reply(i, "nul \x00 byte" if i is bad else f"fine {n}"))
            for n, i in enumerate(items)
        ),
        return_exceptions=True,
    )
    assert commits.batches == 1 and commits.fallbacks == 1
    refused = done[3]
    assert isinstance(refused, asyncpg.PostgresError) and not is_outage(refused)
    replies = await _replies_of(db, items)
    for n, (item, committed) in enumerate(zip(items, done, strict=True)):
        if item is bad:
            assert replies[item.message_id] == []
        else:
            assert isinstance(committed, Committed) and committed.reply is not None
            assert replies[item.message_id] == [f"fine {n}"]


async def _waiting_for_lock(db: asyncpg.Pool, key: int) -> int | None:
    """The backend waiting for the turn lock of this key, if one is."""
    pid = await db.fetchval(
        """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
             AND classid = $1 AND objid = $2 AND objsubid = 2""",
        TURN_LOCK_SPACE,
        key,
    )
    return int(pid) if pid is not None else None


async def _someone_waits(db: asyncpg.Pool, key: int) -> bool:
    return await _waiting_for_lock(db, key) is not None


async def test_a_batch_takes_its_conversations_locks_in_ascending_order(
    db: asyncpg.Pool, database_url: str
) -> None:
    items = await store_inbound(db, [(new_phone(), "text", f"q {n}") for n in range(3)])
    low, middle, high = sorted(items, key=lambda i: i.conversation_id)
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await inbox.lock_conversation(holder, middle.conversation_id)
            commits = BatchedCommit(db)
            batch = asyncio.gather(
                *(commits.commit(i, _reply(i, "hello")) for i in (high, low, middle))
            )
            await eventually(lambda: _someone_waits(db, middle.conversation_id))
            pid = await _waiting_for_lock(db, middle.conversation_id)
            held = await db.fetch(
                """SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted
                     AND classid = $1 AND pid = $2""",
                TURN_LOCK_SPACE,
                pid,
            )
            # Below the one it waits for, all taken; above it, none yet.
            assert [r["objid"] for r in held] == [low.conversation_id]
        assert all(c.reply is not None for c in await asyncio.wait_for(batch, 10))
    finally:
        await holder.close()


async def test_a_connection_lost_mid_batch_fails_every_turn_as_an_outage(
    db: asyncpg.Pool, database_url: str
) -> None:
    items = await store_inbound(db, [(new_phone(), "text", f"q {n}") for n in range(5)])
    plans = [_reply(i, f"answer {n}") for n, i in enumerate(items)]
    target = items[2]
    holder = await asyncpg.connect(database_url)
    try:
        async with counting_pool(database_url) as (pool, _):
            commits = BatchedCommit(pool)
            async with holder.transaction():
                await inbox.lock_conversation(holder, target.conversation_id)
                batch = asyncio.gather(
                    *(commits.commit(i, p) for i, p in zip(items, plans, strict=True)),
                    return_exceptions=True,
                )
                await eventually(lambda: _someone_waits(db, target.conversation_id))
                pid = await _waiting_for_lock(db, target.conversation_id)
                await db.execute("SELECT pg_terminate_backend($1)", pid)
                failed = await asyncio.wait_for(batch, 10)
            assert all(isinstance(f, Exception) and is_outage(f) for f in failed), failed
            assert commits.fallbacks == 0
            assert await _replies_of(db, items) == {i.message_id: [] for i in items}
            # Postgres is back: each turn, retried with its plan, commits once.
            done = await asyncio.gather(
                *(commits.commit(i, p) for i, p in zip(items, plans, strict=True))
            )
    finally:
        await holder.close()
    assert all(c.reply is not None for c in done)
    assert await _replies_of(db, items) == {
        i.message_id: [f"answer {n}"] for n, i in enumerate(items)
    }


@pytest.mark.usefixtures("actors")
async def test_a_shard_answering_many_conversations_at_once_makes_few_statements_per_reply(
    settings: Settings, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []

    async def counted_pool(dsn: str, *, min_size: int, max_size: int) -> asyncpg.Pool:
        async def init(conn: asyncpg.Connection) -> None:
            await _init_connection(conn)
            conn.add_query_logger(lambda q: sent.append(q.query))

        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=init, reset=_keep_session
        )
        return pool

    monkeypatch.setattr(shard_module, "create_pool", counted_pool)
    phones = [new_phone() for _ in range(50)]
    async with local_shard(settings, phones[0]) as shard:
        await shard.ping()
        # The first message of each activates its conversation from Postgres history.
        first = await store_inbound(db, [(p, "text", "hello") for p in phones])
        assert await shard.deliver(first) == len(first)
        await wait_processed(db, *first)
        await shard.drain()
        sent.clear()
        items = await store_inbound(db, [(p, "text", f"hi from {p}") for p in phones])
        assert await shard.deliver(items) == len(items)
        await wait_processed(db, *items)
        await shard.drain()
        statements = len(sent)
        fallbacks = shard._ctx.store.commits.fallbacks
    replies = await _replies_of(db, items)
    assert all(replies[i.message_id] == [f"Echo: hi from {i.customer_phone}"] for i in items)
    assert fallbacks == 0
    # One transaction per turn made 5.4 statements per reply here; shared, about 1 to 2.
    assert statements < 4 * len(items), statements
