"""Meta's sending rules: the 24-hour window and pacing per number and per recipient."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from actors.client import ActorClient
from actors.conversation.placement import shard_for
from actors.delivery.pacing import SendPacer
from actors.delivery.providers import CloudApiProvider, OutboundMessage
from actors.delivery.providers.errors import ReEngagementRequired, Undeliverable
from actors.delivery.window_policy import WindowTemplate, choose, refusal, window_open
from actors.wire import Content
from fakes.graph_api import GraphApiFake
from store import app_settings, live_events
from tests.conftest import GRAPH_TOKEN
from tests.support import (
    BUSINESS_NUMBER,
    envelope,
    eventually,
    new_phone,
    stored_reply,
    text_message,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TEMPLATE = WindowTemplate("follow_up", "en_US")


def test_free_form_is_allowed_at_23h59_and_replaced_by_the_template_at_24h01() -> None:
    reply = Content.plain("Your parcel left the warehouse.")
    at_23h59 = NOW - timedelta(hours=23, minutes=59)
    at_24h01 = NOW - timedelta(hours=24, minutes=1)
    assert window_open(at_23h59, NOW) and not window_open(at_24h01, NOW)
    assert choose(reply, at_23h59, NOW, TEMPLATE) == reply
    sent = choose(reply, at_24h01, NOW, TEMPLATE)
    assert sent is not None and sent.kind == "template"
    assert (sent.template_name, sent.template_language) == ("follow_up", "en_US")


def test_outside_the_window_without_a_template_nothing_may_be_sent() -> None:
    assert choose(Content.plain("hi"), NOW - timedelta(days=2), NOW, None) is None
    assert choose(Content.plain("hi"), None, NOW, TEMPLATE) is not None  # never wrote: template


def test_a_refusal_says_how_old_the_message_is_and_what_to_do_in_the_sandbox() -> None:
    plain = refusal(NOW - timedelta(days=9), NOW, sandbox=False)
    assert plain.startswith("not sent: the customer's last message is 9 days old")
    assert "within 24 hours" in plain and "WINDOW_TEMPLATE_NAME" in plain
    assert "sandbox" not in plain
    sandbox = refusal(NOW - timedelta(hours=30), NOW, sandbox=True)
    assert "30 hours old" in sandbox and "current timestamp" in sandbox


async def test_a_stale_message_without_a_template_is_refused_in_words_on_screen_and_in_the_log(
    webhooks: Any, graph: GraphApiFake, db: Any, redis: Redis, redis_prefix: str
) -> None:
    phone = new_phone()
    stale = text_message(phone, "are you there?")
    stale["timestamp"] = str(int(time.time()) - 3 * 24 * 3600)
    heard: list[dict[str, Any]] = []

    async def listen() -> None:
        async with live_events.subscription(redis, live_events.channel(redis_prefix)) as events:
            async for data in events:
                event = orjson.loads(data)
                if event["type"] == live_events.REPLY_REFUSED:
                    heard.append(event)

    listener = asyncio.ensure_future(listen())
    await asyncio.sleep(0.2)
    try:
        with capture_logs() as logs:
            assert (await webhooks.post(envelope([stale]))).status_code == 200

            async def refused() -> bool:
                return bool(heard) and any(e["event"] == "reply_refused" for e in logs)

            await eventually(refused)
    finally:
        listener.cancel()
    row = await db.fetchrow(
        """SELECT o.id, o.status, o.error_code, o.error_title FROM messages o
           JOIN conversations c ON c.id = o.conversation_id
           WHERE c.customer_phone = $1 AND o.direction = 'outbound'""",
        phone,
    )
    # What the conversation's thread shows next to the reply.
    assert (row["status"], row["error_code"]) == ("failed", 131047)
    assert row["error_title"].startswith("not sent: the customer's last message is 3 days old")
    assert heard[0]["message_id"] == row["id"] and heard[0]["reason"] == row["error_title"]
    # The gateway's own log (serve's), not only the delivery actor's worker file; each
    # gateway listening logs it (this session runs more than one).
    logged = [e for e in logs if e["event"] == "reply_refused" and e["message_id"] == row["id"]]
    assert logged and all(e["reason"] == row["error_title"] for e in logged)
    assert {e["log_level"] for e in logged} == {"warning"}
    assert graph.messages_to(phone) == []


async def test_five_hundred_replies_at_100_per_second_take_5_s_and_keep_each_recipients_order(
    redis: Redis, redis_prefix: str, graph: GraphApiFake
) -> None:
    pacer = SendPacer(
        redis, prefix=f"{redis_prefix}{uuid.uuid4().hex[:6]}:", per_second=100, pair_interval=0
    )
    provider = CloudApiProvider(
        base_url=graph.base_url,  # type: ignore[attr-defined]
        api_version="v21.0",
        access_token=GRAPH_TOKEN,
    )
    recipients = [new_phone() for _ in range(50)]

    async def converse(to: str) -> None:
        # One recipient's replies go one after another, as its conversation actor sends them.
        for n in range(10):
            await pacer.wait_turn(BUSINESS_NUMBER, to)
            await provider.send(
                OutboundMessage(BUSINESS_NUMBER, to, Content.plain(f"reply {n}"), f"{to}-{n}")
            )

    started = time.monotonic()
    try:
        await asyncio.gather(*(converse(to) for to in recipients))
    finally:
        await provider.close()
    elapsed = time.monotonic() - started
    assert elapsed >= 4.8, f"500 sends at 100/s took only {elapsed:.2f} s"
    for to in recipients:
        assert [m.text for m in graph.messages_to(to)] == [f"reply {n}" for n in range(10)]


async def test_the_pair_rate_spaces_replies_to_one_recipient_after_a_burst(
    redis: Redis, redis_prefix: str
) -> None:
    pacer = SendPacer(
        redis,
        prefix=f"{redis_prefix}{uuid.uuid4().hex[:6]}:",
        per_second=1000,
        pair_interval=0.5,
        pair_burst=2,
    )
    started = time.monotonic()
    for _ in range(4):
        await pacer.wait_turn(BUSINESS_NUMBER, "4915550001")
    # Two go at once (the burst), then one every 0.5 s.
    assert 0.9 <= time.monotonic() - started < 2.0


async def _send(graph: GraphApiFake, to: str) -> str:
    provider = CloudApiProvider(
        base_url=graph.base_url,  # type: ignore[attr-defined]
        api_version="v21.0",
        access_token=GRAPH_TOKEN,
        max_attempts=4,
    )
    try:
        return await provider.send(
            OutboundMessage(BUSINESS_NUMBER, to, Content.plain("hello"), "7")
        )
    finally:
        await provider.close()


async def test_limits_and_server_errors_are_retried_until_the_send_goes_through(
    graph: GraphApiFake,
) -> None:
    graph.fail_next(1, status=429, code=130429, title="Rate limit hit")
    graph.fail_next(1, status=400, code=131056, title="Pair rate limit hit")
    graph.fail_next(1, status=500, code=1, title="An unknown error occurred")
    to = new_phone()
    wamid = await _send(graph, to)
    assert [m.wamid for m in graph.messages_to(to)] == [wamid]
    assert graph.attempts == 4


async def test_permanent_errors_are_not_retried_and_keep_their_code(
    graph: GraphApiFake,
) -> None:
    graph.fail_next(1, status=400, code=131026, title="Message undeliverable")
    with pytest.raises(Undeliverable) as undeliverable:
        await _send(graph, new_phone())
    assert undeliverable.value.code == 131026 and graph.attempts == 1

    graph.fail_next(1, status=400, code=131047, title="Re-engagement message")
    with pytest.raises(ReEngagementRequired):
        await _send(graph, new_phone())
    assert graph.attempts == 2


async def test_outside_the_window_the_configured_template_is_sent_and_recorded(
    webhooks: Any, graph: GraphApiFake, db: Any, redis: Redis, redis_prefix: str
) -> None:
    async with db.acquire() as conn:
        await app_settings.put(
            conn, redis, redis_prefix, "window_template", {"name": "we_are_back", "language": "en"}
        )
    try:
        phone = new_phone()
        stale = text_message(phone, "are you there?")
        # Meta delivered this late: the customer wrote two days ago, the window is closed.
        stale["timestamp"] = str(int(time.time()) - 2 * 24 * 3600)
        assert (await webhooks.post(envelope([stale]))).status_code == 200

        async def answered() -> bool:
            return bool(graph.messages_to(phone))

        await eventually(answered)
        [sent] = graph.messages_to(phone)
        assert sent.type == "template"
        assert sent.body["template"]["name"] == "we_are_back"
        row = await db.fetchrow(
            """SELECT o.type, o.payload, o.text FROM messages o JOIN conversations c
               ON c.id = o.conversation_id WHERE c.customer_phone = $1
               AND o.direction = 'outbound'""",
            phone,
        )
        assert row["type"] == "template" and row["payload"]["template"]["name"] == "we_are_back"
        assert row["text"] == "[template we_are_back]"  # what the dashboard shows
    finally:
        async with db.acquire() as conn:
            await app_settings.delete(conn, redis, redis_prefix, "window_template")


async def test_error_131047_from_meta_falls_back_to_the_template(
    webhooks: Any, graph: GraphApiFake, db: Any, redis: Redis, redis_prefix: str
) -> None:
    async with db.acquire() as conn:
        await app_settings.put(
            conn, redis, redis_prefix, "window_template", {"name": "we_are_back", "language": "en"}
        )
    try:
        phone = new_phone()
        # Our clock says the window is open; Meta's says it closed.
        graph.fail_next(1, status=400, code=131047, title="Re-engagement message")
        assert (await webhooks.post(envelope([text_message(phone, "hello")]))).status_code == 200

        async def answered() -> bool:
            return bool(graph.messages_to(phone))

        await eventually(answered)
        assert [m.type for m in graph.messages_to(phone)] == ["template"]
    finally:
        async with db.acquire() as conn:
            await app_settings.delete(conn, redis, redis_prefix, "window_template")


async def test_error_131047_on_a_split_reply_sends_the_template_alone(
    graph: GraphApiFake, actors: ActorClient, db: Any, redis: Redis, redis_prefix: str
) -> None:
    async with db.acquire() as conn:
        await app_settings.put(
            conn, redis, redis_prefix, "window_template", {"name": "we_are_back", "language": "en"}
        )
    try:
        long_reply = " ".join(f"Sentence number {n} of a long answer." for n in range(300))
        phone = new_phone()
        item, outbound_id = await stored_reply(db, phone, "tell me everything", long_reply)
        graph.fail_next(1, status=400, code=131047, title="Re-engagement message")
        await actors.shards[shard_for(phone, len(actors.shards))].deliver.remote([item])

        async def answered() -> bool:
            return bool(graph.messages_to(phone))

        await eventually(answered)
        await asyncio.sleep(0.5)
        # The template replaces the whole reply: the text parts after it are never sent.
        assert [m.type for m in graph.messages_to(phone)] == ["template"]
        parts = await db.fetch(
            "SELECT state FROM send_parts WHERE message_id = $1 ORDER BY part", outbound_id
        )
        assert [p["state"] for p in parts] == ["sent"]
        row = await db.fetchrow("SELECT status, type FROM messages WHERE id = $1", outbound_id)
        assert (row["status"], row["type"]) == ("sent", "template")
    finally:
        async with db.acquire() as conn:
            await app_settings.delete(conn, redis, redis_prefix, "window_template")


async def test_inbound_messages_are_marked_read_through_the_cloud_api(
    webhooks: Any, graph: GraphApiFake
) -> None:
    phone = new_phone()
    message = text_message(phone, "did you see this?")
    assert (await webhooks.post(envelope([message]))).status_code == 200

    async def marked() -> bool:
        return any(r.message_id == message["id"] for r in graph.read_receipts)

    await eventually(marked)
    [receipt] = [r for r in graph.read_receipts if r.message_id == message["id"]]
    assert receipt.phone_number_id == BUSINESS_NUMBER
