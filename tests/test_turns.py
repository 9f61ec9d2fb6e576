"""What the bot does with each customer turn: effects on earlier messages, handoff, abuse."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from redis.asyncio import Redis

from actors.conversation.abuse_limit import SLOW_DOWN, AbuseLimit, Verdict
from actors.conversation.flows.engine import FlowEngine
from actors.conversation.flows.loader import load_flows
from actors.conversation.turn import HANDOFF_REPLY, TurnPlanner
from actors.conversation.turn_plan import commit_turn
from actors.wire import LLMRequest, LLMResult
from config import Settings
from config.settings import DEFAULT_FLOWS
from fakes.graph_api import GraphApiFake
from store import inbox
from store.records import ConversationSnapshot, InboxItem
from tests.inbox_rows import store_inbound, store_texts
from tests.support import (
    WebhookClient,
    envelope,
    eventually,
    message,
    new_phone,
    text_message,
)


async def send_and_wait(
    webhooks: WebhookClient, db: asyncpg.Pool, payload_message: dict[str, object]
) -> None:
    assert (await webhooks.post(envelope([payload_message]))).status_code == 200

    async def processed() -> bool:
        return bool(
            await db.fetchval(
                "SELECT processed_at IS NOT NULL FROM messages WHERE provider_message_id = $1",
                payload_message["id"],
            )
        )

    await eventually(processed)


async def test_a_reaction_is_recorded_on_the_reply_it_reacts_to_and_gets_no_answer(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    await send_and_wait(webhooks, db, text_message(phone, "thanks for the help"))
    await eventually(lambda: _has(graph, phone, 1))
    reply_wamid = graph.messages_to(phone)[0].wamid

    await send_and_wait(
        webhooks,
        db,
        message(phone, "reaction", reaction={"message_id": reply_wamid, "emoji": "👍"}),
    )
    assert await _reaction(db, reply_wamid) == "👍"
    await send_and_wait(
        webhooks, db, message(phone, "reaction", reaction={"message_id": reply_wamid, "emoji": ""})
    )
    assert await _reaction(db, reply_wamid) is None
    await asyncio.sleep(0.3)
    assert len(graph.messages_to(phone)) == 1


async def test_an_edit_updates_the_stored_text_and_a_revoke_marks_it_deleted(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    original = text_message(phone, "my order is 1234")
    await send_and_wait(webhooks, db, original)
    edit = message(
        phone,
        "edit",
        edit={
            "original_message_id": original["id"],
            "message": {"type": "text", "text": {"body": "my order is 1243"}},
        },
    )
    await send_and_wait(webhooks, db, edit)
    row = await db.fetchrow(
        "SELECT text, edited_at FROM messages WHERE provider_message_id = $1", original["id"]
    )
    assert row["text"] == "my order is 1243" and row["edited_at"] is not None

    await send_and_wait(
        webhooks, db, message(phone, "revoke", revoke={"original_message_id": original["id"]})
    )
    deleted = await db.fetchval(
        "SELECT deleted_at FROM messages WHERE provider_message_id = $1", original["id"]
    )
    assert deleted is not None


async def test_asking_for_a_person_hands_the_conversation_over_and_the_bot_goes_quiet(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    await send_and_wait(webhooks, db, text_message(phone, "Can I talk to a HUMAN please?"))
    await eventually(lambda: _has(graph, phone, 1))
    assert graph.messages_to(phone)[0].text == HANDOFF_REPLY
    row = await db.fetchrow(
        "SELECT state, needs_human, handoff_reason FROM conversations WHERE customer_phone = $1",
        phone,
    )
    assert (row["state"], row["needs_human"], row["handoff_reason"]) == (
        "human",
        True,
        "customer_asked",
    )
    await send_and_wait(webhooks, db, text_message(phone, "hello?"))
    await asyncio.sleep(0.3)
    assert len(graph.messages_to(phone)) == 1


async def test_the_word_agent_inside_another_word_does_not_hand_over(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    await send_and_wait(webhooks, db, text_message(phone, "Is the agentur open today?"))
    await eventually(lambda: _has(graph, phone, 1))
    assert graph.messages_to(phone)[0].text == "Echo: Is the agentur open today?"


# -- the abuse limit and idle return, on the planner itself with real Redis and Postgres --


async def test_abuse_limit_allows_then_warns_once_then_drops_and_replays_agree(
    redis: Redis, redis_prefix: str
) -> None:
    limit = AbuseLimit(redis, prefix=f"{redis_prefix}{uuid.uuid4().hex[:6]}:", limit=3, window=60)
    verdicts = [await limit.check("b", "p", i) for i in range(1, 7)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.WARN, Verdict.DROP, Verdict.DROP]
    assert await limit.check("b", "p", 2) is Verdict.ALLOW
    assert await limit.check("b", "p", 4) is Verdict.WARN
    assert await limit.check("b", "other-phone", 7) is Verdict.ALLOW


class _EchoLLM:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, request: LLMRequest) -> LLMResult:
        self.asked.append(request.text)
        return LLMResult(request.request_id, f"Echo: {request.text}", ok=True, model="echo")


async def _store(db: asyncpg.Pool, phone: str, text: str) -> InboxItem:
    [item] = await store_texts(db, phone, text)
    return item


async def _plan(planner: TurnPlanner, db: asyncpg.Pool, item: InboxItem) -> str | None:
    async with db.acquire() as conn:
        work = await inbox.work_state(conn, item.message_id)
    assert work is not None
    snapshot = ConversationSnapshot(item.conversation_id, item.business_number, item.customer_phone)
    plan = await planner.plan(item, work, snapshot)
    committed = await commit_turn(db, item, plan)
    assert committed.blocked_by is None
    async with db.acquire() as conn:  # as if its reply were sent: the next may go
        await inbox.mark_processed(conn, [item.message_id])
    return committed.reply.text if committed.reply is not None else None


@pytest.fixture
def planner_settings(settings: Settings, redis_prefix: str) -> Settings:
    return settings.model_copy(update={"abuse_messages_per_window": 3})


async def test_messages_over_the_abuse_limit_are_stored_but_not_sent_to_the_llm(
    planner_settings: Settings, db: asyncpg.Pool, redis: Redis, redis_prefix: str
) -> None:
    llm = _EchoLLM()
    abuse = AbuseLimit(redis, prefix=redis_prefix, limit=3, window=60)
    planner = TurnPlanner(planner_settings, abuse, llm)
    phone = new_phone()
    items = [await _store(db, phone, f"spam {i}") for i in range(6)]
    replies = [await _plan(planner, db, item) for item in items]
    assert replies == ["Echo: spam 0", "Echo: spam 1", "Echo: spam 2", SLOW_DOWN, None, None]
    assert llm.asked == ["spam 0", "spam 1", "spam 2"]
    stored = await db.fetchval(
        """SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.customer_phone = $1 AND m.direction = 'inbound'""",
        phone,
    )
    assert stored == 6


async def test_a_handed_over_conversation_returns_to_the_bot_after_the_idle_time(
    settings: Settings, db: asyncpg.Pool, redis: Redis, redis_prefix: str
) -> None:
    llm = _EchoLLM()
    abuse = AbuseLimit(redis, prefix=redis_prefix, limit=100, window=60)
    planner = TurnPlanner(
        settings.model_copy(update={"human_idle_return_seconds": 3600}), abuse, llm
    )
    phone = new_phone()
    first = await _store(db, phone, "I need a person")
    assert await _plan(planner, db, first) == HANDOFF_REPLY

    waiting = await _store(db, phone, "anyone?")
    assert await _plan(planner, db, waiting) is None  # a person has it; not idle yet

    await db.execute(
        "UPDATE conversations SET handoff_at = now() - interval '2 hours' WHERE id = $1",
        first.conversation_id,
    )
    later = await _store(db, phone, "still waiting")
    assert await _plan(planner, db, later) == "Echo: still waiting"
    state = await db.fetchval(
        "SELECT state FROM conversations WHERE id = $1", first.conversation_id
    )
    assert state == "bot"


async def _reaction(db: asyncpg.Pool, wamid: str) -> str | None:
    value = await db.fetchval("SELECT reaction FROM messages WHERE provider_message_id = $1", wamid)
    return str(value) if value is not None else None


async def _has(graph: GraphApiFake, phone: str, count: int) -> bool:
    return len(graph.messages_to(phone)) >= count


# -- only conversational messages reach flows, the after-hours notice and the LLM ---------


class _ShippedFlows:
    """The shipped flows file (business hours, greeting, after-hours notice) as a source."""

    def __init__(self) -> None:
        self._engine = FlowEngine(load_flows(DEFAULT_FLOWS))

    async def engine(self) -> FlowEngine:
        return self._engine


# Sunday noon in Berlin: the shipped business hours are closed all day.
_SUNDAY = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["reaction", "edit", "revoke", "system"])
async def test_outside_hours_a_reaction_edit_revoke_or_notice_gets_no_notice_and_no_llm(
    kind: str, settings: Settings, db: asyncpg.Pool, redis: Redis, redis_prefix: str
) -> None:
    llm = _EchoLLM()
    abuse = AbuseLimit(redis, prefix=f"{redis_prefix}{uuid.uuid4().hex[:6]}:", limit=100)
    planner = TurnPlanner(
        settings,
        abuse,
        llm,
        flows=_ShippedFlows(),
        clock=lambda: _SUNDAY,  # type: ignore[arg-type]
    )
    control, phone = new_phone(), new_phone()
    [earlier] = await store_inbound(db, [(control, "text", "where is my parcel?")])
    # The control: a customer's words on a Sunday get the closed notice and the LLM.
    assert "closed right now" in (await _plan(planner, db, earlier) or "")
    assert llm.asked == ["where is my parcel?"]
    # The first message of its conversation on a Sunday: no greeting, no notice either.
    [update] = await store_inbound(db, [(phone, kind, "👍" if kind == "reaction" else None)])

    assert await _plan(planner, db, update) is None
    assert llm.asked == ["where is my parcel?"]
    assert (
        await db.fetchval("SELECT count(*) FROM messages WHERE reply_to_id = $1", update.message_id)
        == 0
    )
