"""Every kind of WhatsApp Cloud API update: how it is stored and how it is answered.

These run through the real gateway, Postgres and Ray shards; only Meta's Graph API and
OpenRouter are fakes (the OpenRouter fake answers "Echo: <last user message>").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from fakes.graph_api import GraphApiFake
from tests.fixtures_whatsapp import (
    FAILED_CODE,
    FAILED_TITLE,
    STATUS_BUILDERS,
    UPDATE_CASES,
    UpdateCase,
    status_delivered,
    status_failed,
    status_read,
    status_sent,
    text,
)
from tests.support import (
    WebhookClient,
    envelope,
    eventually,
    message,
    new_phone,
    new_wamid,
    text_message,
)

# How long to keep listening for a reply that must not come (or must not come twice).
QUIET = 0.5
CASE_IDS = [case.name for case in UPDATE_CASES]


# -- helpers ------------------------------------------------------------------------------


async def inbound_row(db: asyncpg.Pool, wamid: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        """SELECT m.id, m.direction, m.type, m.text, m.payload, m.status, m.processed_at,
                  c.customer_phone, c.customer_name, c.last_customer_message_at
           FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE m.provider_message_id = $1""",
        wamid,
    )


async def reply_row(db: asyncpg.Pool, inbound_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        """SELECT id, direction, text, status, provider_message_id, error_code, error_title
           FROM messages WHERE reply_to_id = $1""",
        inbound_id,
    )


async def is_processed(db: asyncpg.Pool, wamid: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT processed_at IS NOT NULL FROM messages WHERE provider_message_id = $1", wamid
        )
    )


async def status_of(db: asyncpg.Pool, wamid: str) -> str:
    return str(
        await db.fetchval("SELECT status FROM messages WHERE provider_message_id = $1", wamid)
    )


def as_json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def replies(graph: GraphApiFake, phone: str) -> list[str]:
    return [m.text or "" for m in graph.messages_to(phone)]


async def stored_count(db: asyncpg.Pool, phone: str) -> int:
    return int(
        await db.fetchval(
            """SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
               WHERE c.customer_phone = $1""",
            phone,
        )
    )


async def answered_text(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> tuple[str, str]:
    """Send a text and wait for our reply to go out; return (phone, the reply's wamid)."""
    phone = new_phone()
    sent = text(phone)
    assert (await webhooks.post(envelope([sent]))).status_code == 200
    await eventually(lambda: is_processed(db, sent["id"]), within=15)
    inbound = await inbound_row(db, sent["id"])
    assert inbound is not None
    reply = await reply_row(db, inbound["id"])
    assert reply is not None and reply["direction"] == "outbound"
    assert reply["provider_message_id"] == graph.messages_to(phone)[0].wamid
    assert reply["status"] == "sent"
    return phone, reply["provider_message_id"]


# -- every update type --------------------------------------------------------------------


@pytest.mark.parametrize("case", UPDATE_CASES, ids=CASE_IDS)
async def test_every_update_type_is_stored_and_none_crashes(
    case: UpdateCase, webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    sent = case.build(phone)

    response = await webhooks.post(envelope([sent], name="Ada Tester"))

    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1, "duplicates": 0, "statuses": 0}
    row = await inbound_row(db, sent["id"])
    assert row is not None
    assert row["direction"] == "inbound"
    assert row["type"] == case.type
    assert row["text"] == case.text
    payload = as_json(row["payload"])
    assert (payload["id"], payload["type"]) == (sent["id"], sent["type"])
    # Nothing Meta sent is dropped: fields we do not model yet are kept for later.
    assert payload == sent
    assert row["customer_phone"] == phone
    assert row["customer_name"] == "Ada Tester"
    assert row["last_customer_message_at"] == datetime.fromtimestamp(int(sent["timestamp"]), UTC)


@pytest.mark.parametrize("case", UPDATE_CASES, ids=CASE_IDS)
async def test_each_update_type_gets_the_reply_its_policy_says(
    case: UpdateCase, webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    sent = case.build(phone)
    assert (await webhooks.post(envelope([sent]))).status_code == 200

    # A message is marked processed only after its reply (if any) was handed to Meta.
    await eventually(lambda: is_processed(db, sent["id"]), within=15)
    await asyncio.sleep(QUIET)  # a late or second reply would show up by now

    got = replies(graph, phone)
    inbound = await inbound_row(db, sent["id"])
    assert inbound is not None
    reply = await reply_row(db, inbound["id"])
    if case.reply == "none":
        assert got == []
        assert reply is None
        return
    assert len(got) == 1, got
    assert reply is not None and reply["text"] == got[0]
    assert reply["provider_message_id"] == graph.messages_to(phone)[0].wamid
    if case.reply == "llm":
        assert got == [f"Echo: {case.text}"]
    else:
        assert got[0].strip() and not got[0].startswith("Echo:")


# -- several messages in one delivery -----------------------------------------------------


async def test_one_webhook_with_messages_from_two_phones_stores_and_answers_them_all(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    alice, bob = new_phone(), new_phone()
    messages = [
        text_message(alice, "alice one"),
        text_message(bob, "bob one"),
        text_message(alice, "alice two"),
    ]
    body = envelope(messages)
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [
        {"profile": {"name": "Alice"}, "wa_id": alice},
        {"profile": {"name": "Bob"}, "wa_id": bob},
    ]
    # A second entry in the same body, as Meta does when it batches deliveries.
    later = envelope([text_message(bob, "bob two")], name="Bob")
    body["entry"].append(later["entry"][0])

    response = await webhooks.post(body)

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 4
    for phone, name, texts in (
        (alice, "Alice", ["alice one", "alice two"]),
        (bob, "Bob", ["bob one", "bob two"]),
    ):
        rows = await db.fetch(
            """SELECT m.text, c.customer_name FROM messages m
               JOIN conversations c ON c.id = m.conversation_id
               WHERE c.customer_phone = $1 AND m.direction = 'inbound' ORDER BY m.id""",
            phone,
        )
        assert [r["text"] for r in rows] == texts
        assert {r["customer_name"] for r in rows} == {name}

    async def both_answered() -> bool:
        return len(graph.messages_to(alice)) >= 2 and len(graph.messages_to(bob)) >= 2

    await eventually(both_answered, within=15)
    assert replies(graph, alice) == ["Echo: alice one", "Echo: alice two"]
    assert replies(graph, bob) == ["Echo: bob one", "Echo: bob two"]


# -- statuses -----------------------------------------------------------------------------


async def test_statuses_for_a_message_we_never_sent_are_acknowledged_and_store_nothing(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone, unknown = new_phone(), new_wamid()
    statuses = [build(unknown, phone) for build in STATUS_BUILDERS]

    response = await webhooks.post(envelope(statuses=statuses))

    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 0, "duplicates": 0, "statuses": len(statuses)}
    assert (
        await db.fetchval("SELECT count(*) FROM messages WHERE provider_message_id = $1", unknown)
        == 0
    )
    assert (
        await db.fetchval("SELECT count(*) FROM conversations WHERE customer_phone = $1", phone)
        == 0
    )


async def test_status_webhooks_move_our_reply_forward_and_never_back(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone, wamid = await answered_text(webhooks, graph, db)

    # Statuses are applied before the 200, so each is visible as soon as it is answered.
    for build, expected in (
        (status_delivered, "delivered"),
        (status_read, "read"),
        (status_sent, "read"),  # late and out of order: must not move it back
        (status_delivered, "read"),
    ):
        response = await webhooks.post(envelope(statuses=[build(wamid, phone)]))
        assert response.status_code == 200, response.text
        assert response.json() == {"stored": 0, "duplicates": 0, "statuses": 1}
        assert await status_of(db, wamid) == expected, build.__name__


@pytest.mark.parametrize(
    "order",
    [
        pytest.param((status_delivered, status_read), id="delivered_then_read"),
        pytest.param((status_read, status_delivered), id="read_then_delivered"),
    ],
)
async def test_several_statuses_of_one_reply_in_one_webhook_end_at_the_furthest(
    order: tuple[Callable[[str, str], dict[str, Any]], ...],
    webhooks: WebhookClient,
    graph: GraphApiFake,
    db: asyncpg.Pool,
) -> None:
    phone, wamid = await answered_text(webhooks, graph, db)

    response = await webhooks.post(envelope(statuses=[build(wamid, phone) for build in order]))

    assert response.status_code == 200, response.text
    assert await status_of(db, wamid) == "read"


async def test_a_failed_status_marks_our_reply_failed_with_metas_error(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone, wamid = await answered_text(webhooks, graph, db)

    response = await webhooks.post(envelope(statuses=[status_failed(wamid, phone)]))

    assert response.status_code == 200, response.text
    row = await db.fetchrow(
        "SELECT status, error_code, error_title FROM messages WHERE provider_message_id = $1",
        wamid,
    )
    assert dict(row) == {"status": "failed", "error_code": FAILED_CODE, "error_title": FAILED_TITLE}


# -- JSON that is not a webhook -----------------------------------------------------------


def _missing_entry(phone: str) -> Any:
    body = envelope([text_message(phone, "hello")])
    body["entries"] = body.pop("entry")
    return body


def _wrong_object(phone: str) -> Any:
    body = envelope([text_message(phone, "hello")])
    body["object"] = "page"
    return body


def _array_body(phone: str) -> Any:
    return [envelope([text_message(phone, "hello")])]


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (_missing_entry, "entry"),
        (_wrong_object, "'page'"),
        (_array_body, "dictionary"),
    ],
    ids=["missing_entry", "wrong_object", "json_array"],
)
async def test_json_that_is_not_a_webhook_is_refused_with_400_and_nothing_is_stored(
    build: Callable[[str], Any], named: str, webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()

    response = await webhooks.post(build(phone))

    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert named in body["error"], body["error"]
    assert (
        await db.fetchval("SELECT count(*) FROM conversations WHERE customer_phone = $1", phone)
        == 0
    )
    assert await stored_count(db, phone) == 0


async def test_numbers_where_strings_are_documented_are_accepted_as_meta_sends_them(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    # Meta's own examples carry integer timestamps and ids, and coordinates as strings.
    phone = new_phone()
    when = int(datetime.now(tz=UTC).timestamp())
    location = message(phone, "location", location={"latitude": "52.52", "longitude": "13.4"})
    location["timestamp"] = when
    body = envelope([location])
    body["entry"][0]["id"] = 880000000000
    status = {"id": "wamid.unknown-to-us", "status": "delivered", "timestamp": when,
              "recipient_id": int(phone)}  # fmt: skip
    body["entry"][0]["changes"][0]["value"]["statuses"] = [status]
    response = await webhooks.post(body)
    assert response.status_code == 200, response.text
    stored = await db.fetchrow(
        "SELECT text, provider_timestamp FROM messages WHERE provider_message_id = $1",
        location["id"],
    )
    assert stored is not None
    assert stored["provider_timestamp"] == datetime.fromtimestamp(when, tz=UTC)
    assert stored["text"] == "52.52,13.4"
