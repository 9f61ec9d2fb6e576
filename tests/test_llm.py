"""Replies through Ray's LLM pool, end to end: fallback, polite failure, accounting, wire format."""

from __future__ import annotations

import asyncio

import asyncpg

from actors.llm.chat import POLITE_FAILURE
from actors.llm.context import LLMProfile
from actors.llm.offline import OfflineResponder
from actors.wire import LLMRequest
from config import Settings
from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from tests.conftest import FALLBACK_MODEL, PRIMARY_MODEL
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message


async def reply_row(db: asyncpg.Pool, phone: str) -> asyncpg.Record:
    row = await db.fetchrow(
        """SELECT o.text, o.model, o.llm_attempts, o.llm_latency_ms, o.prompt_tokens,
                  o.completion_tokens, o.llm_cost
           FROM messages o JOIN conversations c ON c.id = o.conversation_id
           WHERE c.customer_phone = $1 AND o.direction = 'outbound' ORDER BY o.id LIMIT 1""",
        phone,
    )
    assert row is not None
    return row


async def ask(webhooks: WebhookClient, graph: GraphApiFake, phone: str, text: str) -> str:
    assert (await webhooks.post(envelope([text_message(phone, text)]))).status_code == 200

    async def answered() -> bool:
        return bool(graph.messages_to(phone))

    await eventually(answered, within=30)
    return graph.messages_to(phone)[0].text or ""


async def test_a_failing_primary_model_falls_back_and_the_reply_records_its_cost(
    webhooks: WebhookClient, graph: GraphApiFake, openrouter: OpenRouterFake, db: asyncpg.Pool
) -> None:
    openrouter.fail_next(2, "500", model=PRIMARY_MODEL)  # both tries on the primary
    phone = new_phone()
    assert await ask(webhooks, graph, phone, "primary is down") == "Echo: primary is down"
    row = await reply_row(db, phone)
    assert row["model"] == FALLBACK_MODEL
    assert row["llm_attempts"] == 3
    assert row["llm_latency_ms"] > 0
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["llm_cost"] > 0


async def test_when_every_model_fails_the_customer_is_told_and_a_person_takes_over(
    webhooks: WebhookClient, graph: GraphApiFake, openrouter: OpenRouterFake, db: asyncpg.Pool
) -> None:
    openrouter.fail_next(2, "503", model=PRIMARY_MODEL)
    openrouter.fail_next(1, "malformed_json", model=FALLBACK_MODEL)
    phone = new_phone()
    assert await ask(webhooks, graph, phone, "hello?") == POLITE_FAILURE
    assert (await reply_row(db, phone))["model"] is None
    state = await db.fetchrow(
        "SELECT state, needs_human, handoff_reason FROM conversations WHERE customer_phone = $1",
        phone,
    )
    assert (state["state"], state["needs_human"]) == ("human", True)
    assert state["handoff_reason"] == "llm_unavailable"

    # The bot now stays quiet in this conversation: the next message waits for a person.
    assert (await webhooks.post(envelope([text_message(phone, "still there?")]))).status_code == 200

    async def processed() -> bool:
        return bool(
            await db.fetchval(
                """SELECT bool_and(m.processed_at IS NOT NULL) FROM messages m
                   JOIN conversations c ON c.id = m.conversation_id
                   WHERE c.customer_phone = $1 AND m.direction = 'inbound'""",
                phone,
            )
        )

    await eventually(processed)
    await asyncio.sleep(0.3)
    assert [m.text for m in graph.messages_to(phone)] == [POLITE_FAILURE]


async def test_openrouter_requests_carry_the_documented_headers_and_fields(
    webhooks: WebhookClient, graph: GraphApiFake, openrouter: OpenRouterFake
) -> None:
    phone = new_phone()
    await ask(webhooks, graph, phone, "check the wire format")
    request = next(
        r
        for r in openrouter.requests
        if r.body["messages"][-1]["content"] == "check the wire format"
    )
    assert request.authorization == "Bearer test-openrouter-key"
    assert request.x_title and request.http_referer
    assert request.model == PRIMARY_MODEL
    assert request.body["messages"][0]["role"] == "system"
    assert "Demo Store" in request.body["messages"][0]["content"]  # the FAQ's business profile
    assert {"max_tokens", "temperature"} <= set(request.body)


async def test_offline_responder_answers_faq_questions_and_falls_back_otherwise(
    settings: Settings,
) -> None:
    profile = LLMProfile.from_settings(settings)
    responder = OfflineResponder()

    async def answer(text: str) -> str:
        return (await responder.reply(LLMRequest(1, (), text), profile)).text

    assert "Monday to Friday" in await answer("what time do you open on weekdays?")
    assert "30 days" in await answer("can I return this and get a refund")
    assert "PayPal" in await answer("do you take paypal")
    assert await answer("tell me about quantum chromodynamics") == profile.faq.fallback
