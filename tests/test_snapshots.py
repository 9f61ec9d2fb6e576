"""Passivated conversations come back with their context, from Redis or from Postgres."""

from __future__ import annotations

from typing import Any

import asyncpg
from redis.asyncio import Redis

from actors.client import ActorClient
from actors.conversation.placement import shard_for
from config import Settings
from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from store.snapshots import SnapshotStore
from tests.support import (
    BUSINESS_NUMBER,
    WebhookClient,
    envelope,
    eventually,
    new_phone,
    text_message,
)


async def say(webhooks: WebhookClient, graph: GraphApiFake, phone: str, text: str) -> None:
    count = len(graph.messages_to(phone))
    response = await webhooks.post(envelope([text_message(phone, text)]))
    assert response.status_code == 200

    async def answered() -> bool:
        return len(graph.messages_to(phone)) > count

    await eventually(answered)


def context_of(openrouter: OpenRouterFake, last_user_text: str) -> list[dict[str, Any]]:
    for request in reversed(openrouter.requests):
        messages = request.body["messages"]
        if messages[-1] == {"role": "user", "content": last_user_text}:
            return list(messages)
    raise AssertionError(f"no LLM request ended with {last_user_text!r}")


async def passivate(actors: ActorClient, phone: str) -> dict[str, Any]:
    shard = actors.shards[shard_for(phone, len(actors.shards))]
    await shard.drain.remote()
    assert await shard.passivate_idle.remote(0.0) >= 1
    stats: dict[str, Any] = await shard.stats.remote()
    return stats


async def test_passivated_conversation_is_rehydrated_from_its_redis_snapshot(
    webhooks: WebhookClient,
    graph: GraphApiFake,
    openrouter: OpenRouterFake,
    actors: ActorClient,
    redis: Redis,
    settings: Settings,
) -> None:
    phone = new_phone()
    await say(webhooks, graph, phone, "my name is Ada")
    before = await passivate(actors, phone)

    store = SnapshotStore(redis, prefix=settings.redis_key_prefix)
    key = store.key(BUSINESS_NUMBER, phone)
    ttl = await redis.ttl(key)
    assert 0 < ttl <= settings.snapshot_ttl_seconds

    await say(webhooks, graph, phone, "what is my name?")
    context = context_of(openrouter, "what is my name?")
    assert {"role": "user", "content": "my name is Ada"} in context
    assert {"role": "assistant", "content": "Echo: my name is Ada"} in context
    after = await actors.shards[shard_for(phone, len(actors.shards))].stats.remote()
    assert after["activations"]["redis"] == before["activations"]["redis"] + 1


async def test_without_a_snapshot_the_context_is_rebuilt_from_postgres(
    webhooks: WebhookClient,
    graph: GraphApiFake,
    openrouter: OpenRouterFake,
    actors: ActorClient,
    redis: Redis,
    settings: Settings,
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    await say(webhooks, graph, phone, "I ordered a lamp")
    await say(webhooks, graph, phone, "it arrived broken")
    before = await passivate(actors, phone)
    await SnapshotStore(redis, prefix=settings.redis_key_prefix).delete(BUSINESS_NUMBER, phone)

    await say(webhooks, graph, phone, "can I get a refund?")
    context = context_of(openrouter, "can I get a refund?")
    turns = [m for m in context if m["role"] != "system"]
    assert turns == [
        {"role": "user", "content": "I ordered a lamp"},
        {"role": "assistant", "content": "Echo: I ordered a lamp"},
        {"role": "user", "content": "it arrived broken"},
        {"role": "assistant", "content": "Echo: it arrived broken"},
        {"role": "user", "content": "can I get a refund?"},
    ]
    after = await actors.shards[shard_for(phone, len(actors.shards))].stats.remote()
    assert after["activations"]["postgres"] == before["activations"]["postgres"] + 1
