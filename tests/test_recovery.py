"""Crashes and replays never lose a reply and never send two."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import ray

from actors.client import ActorClient
from actors.conversation.placement import shard_for
from config import Settings
from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from store.records import InboxItem
from tests.support import (
    BUSINESS_NUMBER,
    WebhookClient,
    envelope,
    eventually,
    new_phone,
    stored_reply,
    text_message,
)


async def test_killed_shards_replay_stored_messages_and_answer_each_exactly_once(
    webhooks: WebhookClient,
    graph: GraphApiFake,
    openrouter: OpenRouterFake,
    actors: ActorClient,
    db: asyncpg.Pool,
) -> None:
    # A slow LLM keeps the messages stored but unanswered when the shards die.
    openrouter.set_latency(1.5)
    phones = [new_phone() for _ in range(8)]
    for phone in phones:
        response = await webhooks.post(envelope([text_message(phone, f"before crash {phone}")]))
        assert response.status_code == 200
    await asyncio.sleep(0.5)
    unanswered = await db.fetchval(
        """SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.customer_phone = ANY($1::text[]) AND m.processed_at IS NULL""",
        phones,
    )
    assert unanswered == len(phones)

    pids = [(await shard.stats.remote())["pid"] for shard in actors.shards]
    for shard in actors.shards:
        ray.kill(shard, no_restart=False)
    openrouter.set_latency(0.0)

    async def all_answered() -> bool:
        return all(graph.messages_to(p) for p in phones)

    await eventually(all_answered, within=60)
    await asyncio.sleep(3.0)  # the dead shards' LLM calls finish by now: still no second reply
    for phone in phones:
        assert [m.text for m in graph.messages_to(phone)] == [f"Echo: before crash {phone}"]
    replies = await db.fetchval(
        """SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.customer_phone = ANY($1::text[]) AND m.direction = 'outbound'""",
        phones,
    )
    assert replies == len(phones)
    restarted = [(await shard.stats.remote())["pid"] for shard in actors.shards]
    assert all(new != old for new, old in zip(restarted, pids, strict=True))


async def test_replaying_an_answered_message_sends_nothing_more(
    webhooks: WebhookClient, graph: GraphApiFake, actors: ActorClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    await webhooks.post(envelope([text_message(phone, "answer me once")]))
    await eventually(lambda: _answered(graph, phone))

    async with db.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT m.id, m.conversation_id, m.provider_message_id FROM messages m
               JOIN conversations c ON c.id = m.conversation_id
               WHERE c.customer_phone = $1 AND m.direction = 'inbound'""",
            phone,
        )
    item = InboxItem(
        message_id=row["id"],
        conversation_id=row["conversation_id"],
        business_number=BUSINESS_NUMBER,
        customer_phone=phone,
        type="text",
        text="answer me once",
        provider_message_id=row["provider_message_id"],
    )
    shard = actors.shards[shard_for(phone, len(actors.shards))]
    await shard.deliver.remote([item, item])
    await shard.drain.remote()
    await asyncio.sleep(0.3)
    assert len(graph.messages_to(phone)) == 1


async def test_reply_stored_before_a_crash_is_sent_on_replay_without_a_new_llm_call(
    graph: GraphApiFake, openrouter: OpenRouterFake, actors: ActorClient, db: asyncpg.Pool
) -> None:
    # The state a crash leaves between storing the reply and handing it to delivery.
    phone = new_phone()
    item, _ = await stored_reply(db, phone, "what did you decide?", "the reply decided earlier")
    llm_calls_before = len(openrouter.requests)

    shard = actors.shards[shard_for(phone, len(actors.shards))]
    await shard.deliver.remote([item])
    await eventually(lambda: _answered(graph, phone))
    await shard.drain.remote()
    assert [m.text for m in graph.messages_to(phone)] == ["the reply decided earlier"]
    assert len(openrouter.requests) == llm_calls_before
    processed = await db.fetchval(
        "SELECT processed_at IS NOT NULL FROM messages WHERE id = $1", item.message_id
    )
    assert processed


async def _answered(graph: GraphApiFake, phone: str) -> bool:
    return bool(graph.messages_to(phone))


async def _crashed_mid_send(db: asyncpg.Pool, phone: str) -> tuple[InboxItem, int]:
    """The state a crash before the send ledger left after Meta may have taken a send but
    before we saw its id: a row `sending` with no parts (in flight at the upgrade)."""
    item, reply_id = await stored_reply(db, phone, "did my reply go out?", "the reply in doubt")
    await db.execute(
        "UPDATE messages SET status = 'sending', updated_at = now() WHERE id = $1", reply_id
    )
    return item, reply_id


async def test_a_send_in_doubt_is_not_repeated_when_meta_reports_it_by_our_id(
    webhooks: WebhookClient, graph: GraphApiFake, actors: ActorClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    item, outbound_id = await _crashed_mid_send(db, phone)
    # Meta had accepted it: its status webhook echoes our id in biz_opaque_callback_data.
    status = {
        "id": "wamid.ACCEPTED-BEFORE-CRASH" + phone,
        "status": "delivered",
        "timestamp": "1764000000",
        "recipient_id": phone,
        "biz_opaque_callback_data": str(outbound_id),
    }
    assert (await webhooks.post(envelope(statuses=[status]))).status_code == 200

    shard = actors.shards[shard_for(phone, len(actors.shards))]
    await shard.deliver.remote([item])
    await shard.drain.remote()
    assert graph.messages_to(phone) == []
    row = await db.fetchrow(
        "SELECT status, provider_message_id FROM messages WHERE id = $1", outbound_id
    )
    assert row["provider_message_id"] == status["id"]
    assert row["status"] == "delivered"


async def test_a_send_in_doubt_is_sent_once_when_no_status_comes_within_the_wait(
    graph: GraphApiFake, actors: ActorClient, db: asyncpg.Pool, settings: Settings
) -> None:
    phone = new_phone()
    item, _ = await _crashed_mid_send(db, phone)
    started = time.monotonic()
    shard = actors.shards[shard_for(phone, len(actors.shards))]
    await shard.deliver.remote([item])
    await eventually(
        lambda: _answered(graph, phone), within=settings.unknown_send_wait_seconds + 10
    )
    assert time.monotonic() - started >= settings.unknown_send_wait_seconds - 0.5
    await shard.drain.remote()
    assert [m.text for m in graph.messages_to(phone)] == ["the reply in doubt"]
