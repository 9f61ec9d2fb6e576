"""The delivery actor's round trips, coalesced across the replies of a batch (issue 13).

Many replies handed over at once share their Postgres statements and Redis round trips,
and every send-ledger guarantee still holds: each reply is sent once, a conversation's
replies go in order, and a part the order gate holds back waits for the earlier one.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from actors.delivery import actor as delivery_actor
from actors.delivery.actor import DeliveryActor
from actors.wire import Content, DeliveryRequest, DeliveryResult, split_text
from config import Settings
from fakes.graph_api import GraphApiFake
from store import cluster_metrics as cm
from store import outbound, send_ledger
from store.db import _init_connection, _keep_session, close_pool
from store.send_ledger import PartState
from tests.support import BUSINESS_NUMBER, new_phone, stored_reply

LONG_REPLY = " ".join(f"Sentence number {n} of a long answer." for n in range(300))


_INTROSPECTION = (
    "WITH RECURSIVE typeinfo_tree",
    "SELECT current_setting('jit')",
    "SELECT set_config('jit'",
)


class Counts:
    """Round trips seen by the delivery actor: SQL statements (BEGIN and COMMIT
    included, as each costs a round trip) and Redis commands or pipelines."""

    def __init__(self) -> None:
        self.sql: collections.Counter[str] = collections.Counter()
        self.redis = 0

    def log(self, record: Any) -> None:
        query = " ".join(record.query.split())
        # asyncpg's type introspection, once per new connection: not the reply's cost.
        if not query.startswith(_INTROSPECTION):
            self.sql[query[:60]] += 1

    @property
    def statements(self) -> int:
        return sum(self.sql.values())

    def reset(self) -> None:
        self.sql.clear()
        self.redis = 0


@pytest.fixture
def counts() -> Counts:
    return Counts()


@pytest_asyncio.fixture
async def delivery(
    settings: Settings,
    database_url: str,
    redis_url: str,
    counts: Counts,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[DeliveryActor]:
    """A DeliveryActor in this process, its pool and Redis client counting round trips."""
    pools: list[asyncpg.Pool] = []

    async def counting_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
        async def init(conn: asyncpg.Connection) -> None:
            await _init_connection(conn)
            conn.add_query_logger(counts.log)

        pool: Any = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=init,
            reset=_keep_session,
            command_timeout=30,
        )
        pools.append(pool)
        return pool  # type: ignore[no-any-return]

    monkeypatch.setattr(delivery_actor, "create_pool", counting_pool)
    actor = DeliveryActor(settings, database_url, redis_url=redis_url)
    redis: Redis = actor._redis  # type: ignore[assignment]
    execute_command = redis.execute_command
    pipeline_execute = Pipeline.execute

    async def counted_command(*args: Any, **kwargs: Any) -> Any:
        counts.redis += 1
        return await execute_command(*args, **kwargs)

    async def counted_pipeline(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        counts.redis += 1
        return await pipeline_execute(self, *args, **kwargs)

    monkeypatch.setattr(redis, "execute_command", counted_command)
    monkeypatch.setattr(Pipeline, "execute", counted_pipeline)
    await actor.ping()
    counts.reset()
    yield actor
    if actor._sweeper is not None:
        actor._sweeper.cancel()
    if actor._provider is not None:
        await actor._provider.close()
    await redis.aclose()
    for pool in pools:
        await close_pool(pool)


async def _send(actor: DeliveryActor, batch: list[DeliveryRequest]) -> list[DeliveryResult]:
    results: list[DeliveryResult] = []
    async for chunk in actor.send(batch):
        results.extend(chunk)
    return results


def _request(outbound_id: int, phone: str, text: str) -> DeliveryRequest:
    return DeliveryRequest(outbound_id, BUSINESS_NUMBER, phone, Content.plain(text))


async def test_fifty_replies_in_one_batch_are_each_sent_once_in_few_statements(
    delivery: DeliveryActor,
    graph: GraphApiFake,
    db: asyncpg.Pool,
    redis: Redis,
    redis_prefix: str,
    counts: Counts,
) -> None:
    n = 50
    phones = [new_phone() for _ in range(n)]
    replies = [await stored_reply(db, p, "hi", f"reply to {p}") for p in phones]
    before = await cm.read(redis, redis_prefix)
    batch = [_request(o, p, f"reply to {p}") for p, (_, o) in zip(phones, replies, strict=True)]

    results = await _send(delivery, batch)

    assert sorted(r.request_id for r in results) == sorted(o for _, o in replies)
    assert all(r.ok and r.provider_message_id for r in results), results
    for phone in phones:
        assert [m.text for m in graph.messages_to(phone)] == [f"reply to {phone}"]
    rows = await db.fetch(
        "SELECT status, provider_message_id FROM messages WHERE id = ANY($1::bigint[])",
        [o for _, o in replies],
    )
    assert len(rows) == n and all(r["status"] == "sent" for r in rows)
    by_id = {r.request_id: r.provider_message_id for r in results}
    for _, o in replies:
        async with db.acquire() as conn:
            [part] = await send_ledger.parts_of(conn, o)
        assert part.state == PartState.SENT and part.provider_message_id == by_id[o]
    # The report still counts every delivery, once.
    after = await cm.read(redis, redis_prefix)
    key = (("sent", ""), "")
    sent = after[cm.DELIVERIES.name].get(key, 0) - before[cm.DELIVERIES.name].get(key, 0)
    assert sent == n

    per_reply = counts.statements / n
    print(f"\n{n} replies: {counts.statements} SQL statements ({per_reply:.2f}/reply), "
          f"{counts.redis} Redis round trips ({counts.redis / n:.2f}/reply)")  # fmt: skip
    print("\n".join(f"{c:5d} {q}" for q, c in counts.sql.most_common()))
    # One at a time this is about 10 statements and 3 Redis round trips per reply.
    assert per_reply < 1.5, counts.sql
    assert counts.redis / n < 1.5


async def test_a_conversations_replies_in_one_batch_still_go_in_order(
    delivery: DeliveryActor, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    # A split reply, then two more, all of one conversation in one batch, beside other
    # conversations' replies: the order gate lets each part go only after the earlier.
    phone = new_phone()
    texts = [LONG_REPLY, "second reply", "third reply"]
    ours = [await stored_reply(db, phone, f"q{i}", t) for i, t in enumerate(texts)]
    others = [new_phone() for _ in range(10)]
    theirs = [await stored_reply(db, p, "hi", f"to {p}") for p in others]
    batch = [_request(o, phone, t) for (_, o), t in zip(ours, texts, strict=True)]
    batch += [_request(o, p, f"to {p}") for p, (_, o) in zip(others, theirs, strict=True)]
    # The later replies first: the batch's order must not matter.
    batch.reverse()

    results = await _send(delivery, batch)

    assert all(r.ok for r in results), results
    assert [m.text for m in graph.messages_to(phone)] == [*split_text(LONG_REPLY), *texts[1:]]
    for p in others:
        assert [m.text for m in graph.messages_to(p)] == [f"to {p}"]


async def test_the_same_reply_twice_in_one_batch_is_sent_once(
    delivery: DeliveryActor, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    _, outbound_id = await stored_reply(db, phone, "hi", "only once")
    batch = [_request(outbound_id, phone, "only once")] * 3
    results = await _send(delivery, batch)
    assert all(r.ok for r in results)
    assert len({r.provider_message_id for r in results}) == 1
    assert [m.text for m in graph.messages_to(phone)] == ["only once"]


async def test_one_claim_statement_takes_the_earlier_part_and_refuses_the_later(
    db: asyncpg.Pool,
) -> None:
    # One UPDATE sees the statement's snapshot: the earlier part is still pending there,
    # so the later part of the same conversation is refused in the same statement.
    phone = new_phone()
    _, first = await stored_reply(db, phone, "q1", "first")
    _, second = await stored_reply(db, phone, "q2", "second")
    _, other = await stored_reply(db, new_phone(), "q", "other")
    payload = [Content.plain("x").to_payload()]
    async with db.acquire() as conn:
        made = await send_ledger.create_parts_many(
            conn, [(second, payload), (first, payload), (other, payload)]
        )
        [two], [one], [three] = made[second], made[first], made[other]
        claimed = await send_ledger.claim_many(
            conn, [(two.id, "b"), (one.id, "a"), (three.id, "c")], 5
        )
        assert claimed == {(one.id, "a"), (three.id, "c")}
        assert (await send_ledger.get(conn, two.id)).state == PartState.PENDING  # type: ignore[union-attr]
        # Resolved, the earlier one lets the later go.
        assert await send_ledger.finish_unknown(conn, one.id, "a")
        # Two owners asking for one part in one statement: one of them gets it.
        [won] = await send_ledger.claim_many(conn, [(two.id, "b"), (two.id, "c")], 5)
        assert won in {(two.id, "b"), (two.id, "c")}
        assert (await send_ledger.get(conn, two.id)).owner == won[1]  # type: ignore[union-attr]
        # ... and one answer from Meta is recorded for it, never two.
        recorded = await send_ledger.finish_sent_many(
            conn, [(two.id, won[1], "wamid.ONE"), (two.id, won[1], "wamid.TWO")]
        )
        assert len(recorded) == 1


async def test_batch_reads_and_writes_answer_like_their_single_forms(db: asyncpg.Pool) -> None:
    phone = new_phone()
    _, fresh = await stored_reply(db, phone, "q1", "fresh")
    _, split = await stored_reply(db, new_phone(), "q2", LONG_REPLY)
    payloads = [Content.plain(t).to_payload() for t in split_text(LONG_REPLY)]
    async with db.acquire() as conn:
        await send_ledger.create_parts(conn, split, payloads)
        starts = await outbound.send_starts(conn, [fresh, split, 0])
        assert 0 not in starts
        assert starts[fresh].parts == [] and starts[fresh].facts is not None
        assert starts[fresh].facts == await outbound.send_facts(conn, fresh)
        assert starts[split].parts == await send_ledger.parts_of(conn, split)
        # Made again, the parts are the first caller's, not new ones.
        again = await send_ledger.create_parts_many(conn, [(split, payloads[:1])])
        assert [p.id for p in again[split]] == [p.id for p in starts[split].parts]


async def test_an_outage_recording_a_batch_of_sends_is_waited_out_and_each_sent_once(
    delivery: DeliveryActor,
    graph: GraphApiFake,
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Meta took every send of the batch, and Postgres was away when they were recorded:
    # each is recorded once it is back, never left to the unknown-outcome path.
    phones = [new_phone() for _ in range(10)]
    replies = [await stored_reply(db, p, "hi", f"to {p}") for p in phones]
    real_finish = send_ledger.finish_sent_many
    refused: list[int] = []

    async def finish_after_an_outage(conn: asyncpg.Connection, *args: Any) -> Any:
        if len(refused) < 2:
            refused.append(len(args[0]))
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        return await real_finish(conn, *args)

    monkeypatch.setattr(send_ledger, "finish_sent_many", finish_after_an_outage)
    batch = [_request(o, p, f"to {p}") for p, (_, o) in zip(phones, replies, strict=True)]
    results = await _send(delivery, batch)

    assert all(r.ok for r in results), results
    assert refused and refused[0] == 10  # the whole batch met the outage together
    for phone, result in zip(phones, sorted(results, key=lambda r: r.request_id), strict=True):
        [sent] = graph.messages_to(phone)
        assert sent.text == f"to {phone}" and result.provider_message_id == sent.wamid
    rows = await db.fetch(
        "SELECT state FROM send_parts WHERE message_id = ANY($1::bigint[])",
        [o for _, o in replies],
    )
    assert [r["state"] for r in rows] == ["sent"] * 10


async def test_one_replys_bad_row_fails_that_reply_alone_not_its_batch(
    delivery: DeliveryActor,
    graph: GraphApiFake,
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    phones = [new_phone() for _ in range(5)]
    replies = [await stored_reply(db, p, "hi", f"to {p}") for p in phones]
    bad = replies[2][1]
    real_create = send_ledger.create_parts_many

    async def create_refusing_one(conn: asyncpg.Connection, messages: Any, **kw: Any) -> Any:
        if any(m == bad for m, _ in messages):
            raise asyncpg.DataError("a value out of range")  # not an outage
        return await real_create(conn, messages, **kw)

    monkeypatch.setattr(send_ledger, "create_parts_many", create_refusing_one)
    batch = [_request(o, p, f"to {p}") for p, (_, o) in zip(phones, replies, strict=True)]
    results = {r.request_id: r for r in await _send(delivery, batch)}

    assert not results[bad].ok and results[bad].retryable
    assert "out of range" in (results[bad].error_title or "")
    for phone, (_, o) in zip(phones, replies, strict=True):
        expected = [] if o == bad else [f"to {phone}"]
        assert results[o].ok == (o != bad)
        assert [m.text for m in graph.messages_to(phone)] == expected
