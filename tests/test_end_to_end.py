"""A message in, an AI reply out: through the gateway, Ray shards, the LLM pool and delivery."""

from __future__ import annotations

import asyncio

import asyncpg

from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from tests.conftest import PRIMARY_MODEL
from tests.support import (
    BUSINESS_NUMBER,
    WebhookClient,
    envelope,
    eventually,
    new_phone,
    text_message,
)


async def replies_to(graph: GraphApiFake, phone: str) -> list[str]:
    return [m.text or "" for m in graph.messages_to(phone)]


async def test_signed_text_webhook_gets_exactly_one_llm_reply(
    webhooks: WebhookClient, graph: GraphApiFake, openrouter: OpenRouterFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    response = await webhooks.post(envelope([text_message(phone, "Where is my parcel?")]))
    assert response.status_code == 200

    await eventually(lambda: _has(graph, phone, 1))
    await asyncio.sleep(0.5)  # a second reply would show up by now
    sent = graph.messages_to(phone)
    assert [m.text for m in sent] == ["Echo: Where is my parcel?"]
    assert sent[0].phone_number_id == BUSINESS_NUMBER

    row = await db.fetchrow(
        """SELECT o.status, o.model, o.prompt_tokens, o.completion_tokens,
                  o.provider_message_id, i.processed_at IS NOT NULL AS processed
           FROM messages i JOIN conversations c ON c.id = i.conversation_id
           JOIN messages o ON o.reply_to_id = i.id
           WHERE c.customer_phone = $1""",
        phone,
    )
    assert row["provider_message_id"] == sent[0].wamid
    assert row["status"] == "sent"
    assert row["model"] == PRIMARY_MODEL
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["processed"]


async def test_same_webhook_delivered_five_times_is_stored_and_answered_once(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    payload = envelope([text_message(phone, "hello once")])
    first = await asyncio.gather(*(webhooks.post(payload) for _ in range(3)))
    await eventually(lambda: _has(graph, phone, 1))
    later = [await webhooks.post(payload) for _ in range(2)]
    assert all(r.status_code == 200 for r in [*first, *later])
    assert sum(r.json()["stored"] for r in [*first, *later]) == 1

    await asyncio.sleep(1.0)
    assert len(graph.messages_to(phone)) == 1
    stored = await db.fetchval(
        """SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.customer_phone = $1 AND m.direction = 'inbound'""",
        phone,
    )
    assert stored == 1


async def test_fifty_concurrent_messages_from_one_phone_are_answered_in_order(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    texts = [f"question {i}" for i in range(50)]
    responses = await asyncio.gather(
        *(webhooks.post(envelope([text_message(phone, t)])) for t in texts)
    )
    assert all(r.status_code == 200 for r in responses)
    await eventually(lambda: _has(graph, phone, 50), within=60)

    # Concurrent requests have no order of their own; the order is the one in which the
    # gateway stored them, and every reply must follow it.
    arrival = await db.fetch(
        """SELECT m.text FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.customer_phone = $1 AND m.direction = 'inbound' ORDER BY m.id""",
        phone,
    )
    assert sorted(r["text"] for r in arrival) == sorted(texts)
    assert await replies_to(graph, phone) == [f"Echo: {r['text']}" for r in arrival]


async def test_two_hundred_phones_writing_at_once_are_all_answered(
    webhooks: WebhookClient, graph: GraphApiFake
) -> None:
    phones = [new_phone() for _ in range(200)]
    responses = await asyncio.gather(
        *(webhooks.post(envelope([text_message(p, f"hi from {p}")])) for p in phones)
    )
    assert all(r.status_code == 200 for r in responses)

    async def all_answered() -> bool:
        return all(len(graph.messages_to(p)) >= 1 for p in phones)

    await eventually(all_answered, within=60)
    await asyncio.sleep(0.5)
    for p in phones:
        assert [m.text for m in graph.messages_to(p)] == [f"Echo: hi from {p}"]


async def _has(graph: GraphApiFake, phone: str, count: int) -> bool:
    return len(graph.messages_to(phone)) >= count


async def test_the_webhook_request_id_is_kept_with_the_message_for_its_logs(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    response = await webhooks.post(
        envelope([text_message(phone, "trace me")]), headers={"X-Request-ID": "trace-abc123"}
    )
    assert response.headers["X-Request-ID"] == "trace-abc123"
    stored = await db.fetchval(
        """SELECT m.request_id FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.customer_phone = $1""",
        phone,
    )
    assert stored == "trace-abc123"
    await eventually(lambda: _has(graph, phone, 1))


async def test_a_reply_quotes_its_question_when_newer_messages_are_waiting(
    webhooks: WebhookClient, graph: GraphApiFake
) -> None:
    phone = new_phone()
    first, second = text_message(phone, "first question"), text_message(phone, "second question")
    assert (await webhooks.post(envelope([first, second]))).status_code == 200
    await eventually(lambda: _has(graph, phone, 2))
    replies = graph.messages_to(phone)
    assert [m.text for m in replies] == ["Echo: first question", "Echo: second question"]
    # The first was answered while the second waited, so it quotes its question; the last
    # reply needs no quote.
    assert [m.reply_to for m in replies] == [first["id"], None]
