"""Per-conversation order holds in Postgres, whatever path brings a message, and
passivation never orphans a running conversation (DESIGN.md §3)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from actors.client import ActorClient
from config import Settings
from fakes.graph_api import GraphApiFake
from store import inbox
from tests.inbox_rows import store_texts
from tests.local_shard import local_shard, wait_processed
from tests.support import new_phone

pytestmark = pytest.mark.usefixtures("actors")


def _texts(graph: GraphApiFake, phone: str) -> list[str]:
    return [m.text for m in graph.messages_to(phone)]


async def test_a_new_batch_posted_before_the_replay_loads_older_rows_waits_for_them(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = new_phone()
    first, second = await store_texts(db, phone, "first question", "second question")
    real_unprocessed = inbox.unprocessed

    async def slow_replay(*args: object, **kwargs: object) -> list[object]:
        await asyncio.sleep(1.0)  # the restarted shard's replay is still loading
        return await real_unprocessed(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(inbox, "unprocessed", slow_replay)
    async with local_shard(settings, phone) as shard:
        # The batch queued during the restart: only the later message.
        assert await shard.deliver([second]) == 1
        await wait_processed(db, first, second)
    assert _texts(graph, phone) == ["Echo: first question", "Echo: second question"]


async def test_a_message_the_router_dropped_is_handled_before_the_later_one_it_took(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake
) -> None:
    phone = new_phone()
    async with local_shard(settings, phone) as shard:
        await shard.ping()  # started, and its replay is done
        await asyncio.sleep(0.2)
        first, second = await store_texts(db, phone, "one", "two")
        await shard.deliver([second])
        await wait_processed(db, first, second)
    assert _texts(graph, phone) == ["Echo: one", "Echo: two"]


async def test_passivating_a_conversation_while_a_message_is_posted_keeps_one_actor(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake
) -> None:
    phone = new_phone()
    async with local_shard(settings, phone) as shard:
        [first] = await store_texts(db, phone, "hello")
        await shard.deliver([first])
        await wait_processed(db, first)
        await shard.drain()
        [key] = [k for k in shard._conversations if k[1] == phone]
        conv = shard._conversations[key]
        [second] = await store_texts(db, phone, "are you there")
        original = conv.passivate

        async def passivate_while_a_message_comes() -> None:
            await original()
            await shard.deliver([second])  # arrives while the snapshot is written

        conv.passivate = passivate_while_a_message_comes  # type: ignore[method-assign]
        await shard.passivate_idle(0.0)
        assert shard._conversations.get(key) is conv  # still hosted: it is busy
        [third] = await store_texts(db, phone, "third")
        await shard.deliver([third])
        assert shard._conversations.get(key) is conv
        await wait_processed(db, second, third)
        await shard.drain()
        # Now idle: it goes.
        conv.passivate = original  # type: ignore[method-assign]
        assert await shard.passivate_idle(0.0) >= 1
        assert key not in shard._conversations
    assert _texts(graph, phone) == ["Echo: hello", "Echo: are you there", "Echo: third"]


async def test_a_later_message_committed_first_by_another_gateway_waits_for_the_earlier(
    settings: Settings, db: asyncpg.Pool, graph: GraphApiFake, actors: ActorClient
) -> None:
    # Gateway A took id n, gateway B id n+1 and routed it first; A's commit lands later.
    phone = new_phone()
    async with local_shard(settings, phone) as shard:
        await shard.ping()
        await asyncio.sleep(0.2)
        first, second = await store_texts(db, phone, "earlier", "later")
        await shard.deliver([second])
        await asyncio.sleep(0.3)
        await shard.deliver([first])
        await wait_processed(db, first, second)
    assert _texts(graph, phone) == ["Echo: earlier", "Echo: later"]
