"""Replies from the LLM pool: fallback models, polite failure, and the offline FAQ responder."""

from __future__ import annotations

import asyncio

import asyncpg

from actors.faq import Faq
from actors.llm_clients import POLITE_FAILURE, OfflineResponder
from actors.messages import LLMRequest
from config.settings import DEFAULT_FAQ
from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from tests.conftest import FALLBACK_MODEL, PRIMARY_MODEL
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message


async def reply_row(db: asyncpg.Pool, phone: str) -> asyncpg.Record:
    row = await db.fetchrow(
        """SELECT o.text, o.model FROM messages o JOIN conversations c ON c.id = o.conversation_id
           WHERE c.customer_phone = $1 AND o.direction = 'outbound'""",
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


async def test_a_failing_primary_model_falls_back_to_the_next_one(
    webhooks: WebhookClient, graph: GraphApiFake, openrouter: OpenRouterFake, db: asyncpg.Pool
) -> None:
    openrouter.fail_next(1, "500", model=PRIMARY_MODEL)
    phone = new_phone()
    assert await ask(webhooks, graph, phone, "primary is down") == "Echo: primary is down"
    assert (await reply_row(db, phone))["model"] == FALLBACK_MODEL


async def test_a_primary_model_that_times_out_falls_back(
    webhooks: WebhookClient, graph: GraphApiFake, openrouter: OpenRouterFake, db: asyncpg.Pool
) -> None:
    openrouter.fail_next(1, "timeout", model=PRIMARY_MODEL)
    phone = new_phone()
    assert await ask(webhooks, graph, phone, "slow primary") == "Echo: slow primary"
    assert (await reply_row(db, phone))["model"] == FALLBACK_MODEL


async def test_an_unusable_completion_is_never_sent_to_the_customer(
    webhooks: WebhookClient, graph: GraphApiFake, openrouter: OpenRouterFake
) -> None:
    openrouter.fail_next(1, "null_content", model=PRIMARY_MODEL)
    openrouter.fail_next(1, "html", model=FALLBACK_MODEL, status=200)
    phone = new_phone()
    assert await ask(webhooks, graph, phone, "anyone?") == POLITE_FAILURE


async def test_when_every_model_fails_the_customer_gets_a_polite_reply(
    webhooks: WebhookClient, graph: GraphApiFake, openrouter: OpenRouterFake, db: asyncpg.Pool
) -> None:
    openrouter.fail_next(1, "503", model=PRIMARY_MODEL)
    openrouter.fail_next(1, "malformed_json", model=FALLBACK_MODEL)
    phone = new_phone()
    assert await ask(webhooks, graph, phone, "hello?") == POLITE_FAILURE
    assert (await reply_row(db, phone))["model"] is None
    await asyncio.sleep(0.3)
    assert len(graph.messages_to(phone)) == 1


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


async def test_offline_responder_answers_faq_questions_and_falls_back_otherwise() -> None:
    faq = Faq.load(DEFAULT_FAQ)
    responder = OfflineResponder(faq)

    async def answer(text: str) -> str:
        return (await responder.reply(LLMRequest(1, (), text))).text

    assert "Monday to Friday" in await answer("what time do you open on weekdays?")
    assert "30 days" in await answer("can I return this and get a refund")
    assert "PayPal" in await answer("do you take paypal")
    assert await answer("tell me about quantum chromodynamics") == faq.fallback
