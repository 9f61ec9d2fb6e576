"""Scripted flows: triggers, questions with validation, business hours, reloads, and errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from actors.conversation.flows.engine import FlowEngine, TurnInput
from actors.conversation.flows.loader import FlowFileError, load_flows, parse_flows
from actors.conversation.flows.source import FlowSource
from config.settings import DEFAULT_FLOWS
from fakes.graph_api import GraphApiFake
from store import app_settings
from store.settings_watch import SettingsWatcher
from tests.support import WebhookClient, envelope, eventually, message, new_phone, text_message

# Tuesday 2026-11-24 10:00 in Berlin is open; Sunday is closed all day.
OPEN = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SUNDAY = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def store_flows() -> FlowEngine:
    return FlowEngine(load_flows(DEFAULT_FLOWS))


def turn(
    text: str | None = None, *, choice: str | None = None, first: bool = False, now: datetime = OPEN
) -> TurnInput:
    return TurnInput(text=text, choice_id=choice, first_message=first, now=now)


def test_the_shipped_store_flow_greets_a_new_customer_with_three_buttons() -> None:
    outcome = store_flows().respond(turn("good morning", first=True), None, {})
    assert outcome is not None and outcome.content is not None
    assert outcome.content.kind == "buttons"
    assert [c.id for c in outcome.content.choices] == [
        "order_status",
        "opening_hours",
        "talk_to_person",
    ]


def test_order_status_asks_for_the_number_validates_it_and_uses_it() -> None:
    engine = store_flows()
    asked = engine.respond(turn(choice="order_status"), None, {})
    assert asked is not None and asked.pending is not None
    assert "order number" in asked.content.text  # type: ignore[union-attr]

    wrong = engine.respond(turn("it's the blue one"), asked.pending, asked.variables)
    assert wrong is not None and wrong.pending == asked.pending
    assert "doesn't look like an order number" in wrong.content.text  # type: ignore[union-attr]

    done = engine.respond(turn("123456"), wrong.pending, wrong.variables)
    assert done is not None and done.pending is None
    assert done.variables["order_number"] == "123456"
    assert "Order 123456 is being prepared" in done.content.text  # type: ignore[union-attr]


def test_a_keyword_beats_the_first_message_greeting_and_words_are_matched_whole() -> None:
    engine = store_flows()
    hours = engine.respond(turn("Hi, when are you open?", first=True), None, {})
    assert hours is not None and hours.flow == "opening_hours"
    assert engine.respond(turn("my hippo is broken"), None, {}) is None  # "hi" inside a word


def test_the_person_button_hands_over() -> None:
    outcome = store_flows().respond(turn(choice="talk_to_person"), None, {})
    assert outcome is not None and outcome.handoff and outcome.flow == "talk_to_person"


def test_outside_hours_the_notice_goes_out_once_a_day_then_the_llm_answers_alone() -> None:
    engine = store_flows()
    assert not engine.closed(OPEN) and engine.closed(SUNDAY)
    first = engine.respond(turn("is my parcel lost?", now=SUNDAY), None, {})
    assert first is not None and first.to_llm and "closed right now" in first.content.text  # type: ignore[union-attr]
    again = engine.respond(turn("any news?", now=SUNDAY), None, first.variables)
    assert again is None
    during_hours = engine.respond(turn("is my parcel lost?"), None, {})
    assert during_hours is None


def test_a_broken_flows_file_is_refused_with_file_line_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "flows.yaml"
    bad.write_text(
        "flows:\n"
        "  - name: a\n"
        "    trigger: {keyword: hi}\n"
        "    actions:\n"
        "      - reply_buttons:\n"
        "          text: choose\n"
        "          buttons: [{id: x, title: a title that is much too long}]\n"
    )
    with pytest.raises(FlowFileError) as refused:
        load_flows(bad)
    assert f"{bad}:7: flows.0.actions.0.reply_buttons.buttons.0.title" in str(refused.value)
    with pytest.raises(FlowFileError, match=r"<flows>:1: flows\.0\.trigger: .*needs keyword"):
        parse_flows("flows: [{name: b, trigger: {}, actions: [{reply: x}]}]")
    with pytest.raises(FlowFileError, match="not valid YAML"):
        parse_flows("flows: [unclosed")


async def test_the_flows_file_is_reloaded_when_it_changes_and_a_bad_edit_keeps_the_last_good(
    tmp_path: Path, db: asyncpg.Pool, redis: Redis, redis_prefix: str
) -> None:
    path = tmp_path / "flows.yaml"
    path.write_text("flows: [{name: a, trigger: {keyword: ping}, actions: [{reply: pong}]}]")
    watcher = SettingsWatcher(db, redis, prefix=redis_prefix, refresh_seconds=0)
    source = FlowSource(path, watcher, refresh_seconds=0)
    outcome = (await source.engine()).respond(turn("ping"), None, {})
    assert outcome is not None and outcome.content.text == "pong"  # type: ignore[union-attr]

    await asyncio.sleep(0.01)
    path.write_text("flows: [{name: a, trigger: {keyword: ping}, actions: [{reply: PONG}]}]")
    outcome = (await source.engine()).respond(turn("ping"), None, {})
    assert outcome is not None and outcome.content.text == "PONG"  # type: ignore[union-attr]

    await asyncio.sleep(0.01)
    path.write_text("flows: [{name: a, trigger: {}, actions: []}]")
    outcome = (await source.engine()).respond(turn("ping"), None, {})
    assert outcome is not None and outcome.content.text == "PONG"  # type: ignore[union-attr]


TEST_FLOWS = """
flows:
  - name: zebra_orders
    trigger: {keyword: zebra order}
    actions:
      - reply_buttons:
          text: "What would you like to do?"
          buttons:
            - {id: zebra_status, title: Order status}
            - {id: zebra_cancel, title: Cancel order}
  - name: zebra_status
    trigger: {button: zebra_status}
    actions:
      - ask: {field: order_number, prompt: "Your order number?", pattern: "[0-9]{6}",
              retry: "Six digits, please."}
      - set: {last_order: "{order_number}"}
      - reply: "Order {order_number} ships tomorrow."
"""


async def test_a_flow_runs_end_to_end_with_buttons_a_question_and_a_retry(
    webhooks: WebhookClient,
    graph: GraphApiFake,
    db: asyncpg.Pool,
    redis: Redis,
    redis_prefix: str,
) -> None:
    async with db.acquire() as conn:
        await app_settings.put(conn, redis, redis_prefix, "flows", TEST_FLOWS)
    phone = new_phone()
    try:
        await asyncio.sleep(1.2)  # the shards look for new flows once a second

        async def say(payload: dict[str, object], replies: int) -> dict[str, object]:
            assert (await webhooks.post(envelope([payload]))).status_code == 200

            async def answered() -> bool:
                return len(graph.messages_to(phone)) >= replies

            await eventually(answered)
            return graph.messages_to(phone)[-1].body

        menu = await say(text_message(phone, "Zebra order please"), 1)
        assert menu["type"] == "interactive"
        buttons = menu["interactive"]["action"]["buttons"]  # type: ignore[index]
        assert [b["reply"]["id"] for b in buttons] == ["zebra_status", "zebra_cancel"]

        tap = message(
            phone,
            "interactive",
            interactive={
                "type": "button_reply",
                "button_reply": {"id": "zebra_status", "title": "Order status"},
            },
        )
        assert (await say(tap, 2))["text"] == {"body": "Your order number?", "preview_url": False}
        assert (await say(text_message(phone, "12"), 3))["text"]["body"] == "Six digits, please."  # type: ignore[index]
        done = await say(text_message(phone, "654321"), 4)
        assert done["text"]["body"] == "Order 654321 ships tomorrow."  # type: ignore[index]
        variables = await db.fetchval(
            "SELECT variables FROM conversations WHERE customer_phone = $1", phone
        )
        assert variables["last_order"] == "654321"
    finally:
        async with db.acquire() as conn:
            await app_settings.delete(conn, redis, redis_prefix, "flows")


LIST_FLOWS = """
flows:
  - name: pick_size
    trigger: {regex: "\\\\bsizes?\\\\b"}
    actions:
      - set: {topic: sizes}
      - reply_list:
          text: "Which size?"
          button: Sizes
          rows:
            - {id: size_s, title: Small, description: "36-38"}
            - {id: size_m, title: Medium}
  - name: chose_small
    trigger: {button: size_s}
    actions:
      - reply: "Small it is ({topic})."
"""


def test_a_regex_trigger_answers_with_a_list_and_a_list_choice_triggers_its_flow() -> None:
    engine = FlowEngine(parse_flows(LIST_FLOWS))
    listed = engine.respond(turn("Which SIZES do you have?"), None, {})
    assert listed is not None and listed.content is not None
    assert listed.content.kind == "list" and listed.content.list_button == "Sizes"
    assert [(c.id, c.title, c.description) for c in listed.content.choices] == [
        ("size_s", "Small", "36-38"),
        ("size_m", "Medium", None),
    ]
    assert listed.variables == {"topic": "sizes"}
    chosen = engine.respond(turn(choice="size_s"), None, listed.variables)
    assert chosen is not None and chosen.content.text == "Small it is (sizes)."  # type: ignore[union-attr]
    assert engine.respond(turn("downsize"), None, {}) is None  # the regex's word boundaries


def test_pacing_is_capped_at_metas_highest_tier() -> None:
    from pydantic import ValidationError

    from config import Settings

    with pytest.raises(ValidationError, match="1000"):
        Settings(_env_file=None, delivery_messages_per_second=5000)  # type: ignore[call-arg]
