"""An outage of a part is not the message's fault: it waits, spends no try, bills no LLM twice.

Postgres restarting or a delivery actor dying for longer than all of a message's tries
must not turn the message into a dead letter, nor leave it for the sweeper a minute
later: once the part is back, the reply goes out, exactly once (DESIGN.md §3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
import pytest

from actors.batching import BatchCallFailed
from actors.wire import DeliveryRequest, DeliveryResult
from config import Settings
from fakes.graph_api import GraphApiFake
from store import outbound
from store.records import InboxItem
from tests.inbox_rows import store_texts
from tests.local_shard import local_shard, wait_processed
from tests.support import new_phone

pytestmark = pytest.mark.usefixtures("actors")

MAX_ATTEMPTS = 3
OUTAGE_CALLS = 8  # far more failed calls than the message has tries


async def _row(db: asyncpg.Pool, item: InboxItem) -> asyncpg.Record:
    return await db.fetchrow(
        "SELECT status, attempts, processed_at FROM messages WHERE id = $1", item.message_id
    )


async def test_a_delivery_actor_outage_longer_than_all_tries_ends_in_one_reply_not_a_dead_letter(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake
) -> None:
    phone = new_phone()
    async with local_shard(
        settings, phone, message_max_attempts=MAX_ATTEMPTS, outage_retry_max_seconds=0.05
    ) as shard:
        await shard.ping()
        real_send = shard._ctx.send_reply
        calls: list[int] = []

        async def send_while_the_actor_is_down(request: DeliveryRequest) -> DeliveryResult:
            calls.append(request.request_id)
            if len(calls) <= OUTAGE_CALLS:
                raise BatchCallFailed("ActorDiedError: the delivery actor's worker was killed")
            return await real_send(request)

        shard._ctx = dataclasses.replace(shard._ctx, send_reply=send_while_the_actor_is_down)
        [item] = await store_texts(db, phone, "are you there?")
        await shard.deliver([item])
        await wait_processed(db, item)
    assert len(calls) == OUTAGE_CALLS + 1
    assert [m.text for m in graph.messages_to(phone)] == ["Echo: are you there?"]
    row = await _row(db, item)
    assert (row["status"], row["attempts"]) == ("processed", 1)


async def test_a_commit_lost_to_a_postgres_outage_is_retried_with_the_same_plan(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = new_phone()
    real_reserve = outbound.reserve_reply
    lost: list[int] = []

    async def reserve_while_postgres_restarts(conn: asyncpg.Connection, reply: Any) -> Any:
        if len(lost) < OUTAGE_CALLS:
            lost.append(reply.reply_to_id)
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        return await real_reserve(conn, reply)

    monkeypatch.setattr(outbound, "reserve_reply", reserve_while_postgres_restarts)
    async with local_shard(
        settings, phone, message_max_attempts=MAX_ATTEMPTS, outage_retry_max_seconds=0.05
    ) as shard:
        await shard.ping()
        planner = shard._ctx.planner
        real_plan = planner.plan
        plans: list[int] = []

        async def counted_plan(item: InboxItem, *args: Any) -> Any:
            plans.append(item.message_id)
            return await real_plan(item, *args)

        planner.plan = counted_plan  # type: ignore[method-assign]
        [item] = await store_texts(db, phone, "what are your hours?")
        await shard.deliver([item])
        await wait_processed(db, item)
    assert len(lost) == OUTAGE_CALLS
    assert plans == [item.message_id], "the LLM was asked again after the outage"
    assert [m.text for m in graph.messages_to(phone)] == ["Echo: what are your hours?"]
    row = await _row(db, item)
    assert (row["status"], row["attempts"]) == ("processed", 1)
