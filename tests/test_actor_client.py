"""The gateway's typed client for the actors, and the store functions health, diagnostics
and live events call: real Ray actors, real Redis and Postgres; stand-ins only for an
actor that never answers."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from actors.client import ActorClient, NoActors
from actors.wire import Content, DeliveryRequest, LLMRequest
from store import live_events, probes
from tests.support import eventually


class _Silent:
    """A handle whose every method answers only after the test has given up."""

    def __getattr__(self, _: str) -> Any:
        class Method:
            @staticmethod
            def remote(*_: object) -> object:
                return asyncio.sleep(10)

        return Method


def _none() -> ActorClient:
    return ActorClient(shards=[], llm=[], delivery=[])


async def test_calls_to_a_kind_with_no_actors_say_so() -> None:
    with pytest.raises(NoActors):
        await _none().send_reply(DeliveryRequest(1, "b", "c", Content.plain("hi")), wait=1)
    with pytest.raises(NoActors):
        await _none().complete_one(LLMRequest(request_id=-1, history=(), text="hi"), wait=1)
    assert await _none().shard_stats(wait=1) == []
    assert await _none().llm_health(wait=1) == []
    assert await _none().llm_metrics() == b""


async def test_shard_stats_leave_out_a_shard_that_does_not_answer(actors: ActorClient) -> None:
    client = ActorClient(shards=[*actors.shards, _Silent()], llm=[], delivery=[])  # type: ignore[list-item]
    stats = await client.shard_stats(wait=0.5)
    assert sorted(s["shard"] for s in stats) == list(range(len(actors.shards)))
    assert all({"queued", "active_conversations"} <= set(s) for s in stats)


async def test_llm_health_fails_when_one_actor_does_not_answer(actors: ActorClient) -> None:
    reports = await actors.llm_health(wait=5)
    assert len(reports) == len(actors.llm) and all("breakers" in r for r in reports)
    stuck = ActorClient(shards=[], llm=[*actors.llm, _Silent()], delivery=[])  # type: ignore[list-item]
    with pytest.raises(TimeoutError):
        await stuck.llm_health(wait=0.2)


async def test_ping_and_describe_cover_every_actor(actors: ActorClient) -> None:
    await actors.ping()
    assert actors.describe() == (
        f"{len(actors.shards)} shards, {len(actors.llm)} llm, {len(actors.delivery)} delivery"
    )
    assert len(actors.all()) == len(actors.shards) + len(actors.llm) + len(actors.delivery)


async def test_llm_test_prompt_answers_through_one_actor(actors: ActorClient) -> None:
    result = await actors.complete_one(
        LLMRequest(request_id=-12345, history=(), text="Say hello"), wait=30
    )
    assert result.request_id == -12345 and result.text


async def test_live_events_published_in_one_round_trip_reach_a_subscriber(
    redis: Redis, redis_prefix: str
) -> None:
    prefix = f"{redis_prefix}client-test:"
    received: list[bytes] = []
    async with live_events.subscription(redis, live_events.channel(prefix)) as events:

        async def subscribed() -> bool:
            counts = dict(await redis.pubsub_numsub(live_events.channel(prefix)))
            return bool(counts.get(live_events.channel(prefix).encode()))

        await eventually(subscribed, within=5)
        sent = [live_events.encode("a", n=1), live_events.encode("b", n=2)]
        await live_events.publish_encoded(redis, prefix, sent)
        await live_events.publish(redis, prefix, "c", n=3)

        async def three() -> None:
            async for data in events:
                received.append(data)
                if len(received) == 3:
                    return

        await asyncio.wait_for(three(), 5)
    assert received == [*sent, b'{"type":"c","n":3}']


async def test_probes_round_trip_and_leave_nothing_behind(
    redis: Redis, redis_prefix: str, db: asyncpg.Pool
) -> None:
    prefix = f"{redis_prefix}probe:"
    await probes.redis_ping(redis)
    await probes.redis_round_trip(redis, prefix)
    assert [k async for k in redis.scan_iter(match=f"{prefix}*")] == []
    async with db.acquire() as conn:
        await probes.postgres_ping(conn)
        assert (await probes.postgres_version(conn))[0].isdigit()
