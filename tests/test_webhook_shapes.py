"""Every body Meta sends gets 200, and nothing in it is lost (issue 11 §1).

Shapes from Meta's documentation that the happy path never shows: customers known only
by a business-scoped user id, contacts without a profile, integer numbers, messages with
no type, several changes in one entry, and a malformed message among good ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import pytest

from fakes.graph_api import GraphApiFake
from tests.fixtures_fields import (
    body,
    messages_value,
    new_bsuid,
    now,
    username_contact,
    username_message,
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


async def stored(db: asyncpg.Pool, wamid: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        """SELECT m.type, m.text, m.processed_at, c.customer_phone, c.customer_name
           FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE m.provider_message_id = $1""",
        wamid,
    )


async def processed(db: asyncpg.Pool, wamid: str) -> bool:
    row = await stored(db, wamid)
    return row is not None and row["processed_at"] is not None


# -- usernames: business-scoped user ids ----------------------------------------------------


@pytest.mark.parametrize("from_value", [None, ""], ids=["no_from", "empty_from"])
async def test_a_customer_known_only_by_user_id_is_a_conversation_and_gets_the_reply_there(
    from_value: str | None, webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    bsuid = new_bsuid()
    sent = username_message(bsuid, "where is my order?", from_value=from_value)
    payload = body(
        ("messages", messages_value(contacts=[username_contact(bsuid, "Grace")], messages=[sent]))
    )

    response = await webhooks.post(payload)

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    row = await stored(db, sent["id"])
    assert row is not None
    assert (row["customer_phone"], row["customer_name"]) == (bsuid, "Grace")
    await eventually(lambda: processed(db, sent["id"]), within=15)
    [reply] = graph.messages_to(bsuid)
    assert reply.text == "Echo: where is my order?"
    # Meta takes a user id in `recipient`; `to` is for phone numbers and would win.
    assert reply.body["recipient"] == bsuid
    assert "to" not in reply.body


async def test_a_status_naming_only_the_recipients_user_id_is_accepted(
    webhooks: WebhookClient,
) -> None:
    status = {"id": new_wamid(), "status": "delivered", "timestamp": str(now()),
              "recipient_user_id": new_bsuid()}  # fmt: skip

    response = await webhooks.post(body(("messages", messages_value(statuses=[status]))))

    assert response.status_code == 200, response.text
    assert response.json()["statuses"] == 1


# -- Meta's documented variants -----------------------------------------------------------


def _no_profile_no_wa_id(phone: str) -> tuple[dict[str, Any], list[str]]:
    sent = text_message(phone, "hello")
    value = messages_value(contacts=[{"wa_id": phone}, {"profile": {"name": "X"}}], messages=[sent])
    return body(("messages", value)), [sent["id"]]


def _integer_numbers(phone: str) -> tuple[dict[str, Any], list[str]]:
    sent = message(
        phone,
        "order",
        order={"catalog_id": 12345, "product_items": [
            {"product_retailer_id": "kettle", "quantity": 2, "item_price": 19.99,
             "currency": "EUR"}]},
    )  # fmt: skip
    sent["timestamp"] = now()
    return body(("messages", messages_value(messages=[sent]))), [sent["id"]]


def _no_type(phone: str) -> tuple[dict[str, Any], list[str]]:
    sent = text_message(phone, "typeless")
    del sent["type"]
    return body(("messages", messages_value(messages=[sent]))), [sent["id"]]


def _unknown_types(phone: str) -> tuple[dict[str, Any], list[str]]:
    welcome = message(phone, "request_welcome")
    unknown = message(phone, "unknown", errors=[{"code": 131051, "title": "Unsupported"}])
    future = message(phone, "hologram", hologram={"id": "h1"})
    value = messages_value(messages=[welcome, unknown, future])
    return body(("messages", value)), [welcome["id"], unknown["id"], future["id"]]


def _value_errors_only(phone: str) -> tuple[dict[str, Any], list[str]]:
    errors = [{"code": 131051, "title": "Message type unknown", "message": "unknown"}]
    return body(("messages", messages_value(errors=errors))), []


def _statuses_with_extras(phone: str) -> tuple[dict[str, Any], list[str]]:
    base = {"recipient_id": phone, "timestamp": str(now())}
    statuses = [
        {**base, "id": new_wamid(), "status": "sent",
         "conversation": {"id": "c1", "origin": {"type": "utility"}},
         "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility",
                     "type": "regular"}},
        {**base, "id": new_wamid(), "status": "delivered",
         "pricing": {"billable": False, "pricing_model": "PMP", "category": "service",
                     "type": "free_customer_service"}},
        {**base, "id": new_wamid(), "status": "read"},  # no pricing at all
        {**base, "id": "gBGGSFcCNEOPAgkO_KJ55r4w_ww", "status": "sent"},  # not a wamid
    ]  # fmt: skip
    value = messages_value(statuses=statuses, contacts=[{"wa_id": phone, "user_id": new_bsuid()}])
    return body(("messages", value)), []


def _everything_together(phone: str) -> tuple[dict[str, Any], list[str]]:
    first, second = text_message(phone, "one"), text_message(phone, "two")
    status = {"id": new_wamid(), "status": "delivered", "timestamp": now(), "recipient_id": phone}
    call = {"id": "wacid.1", "from": phone, "event": "connect", "timestamp": str(now())}
    value = messages_value(messages=[first], statuses=[status], calls=[call])
    payload = body(("messages", value), ("messages", messages_value(messages=[second])))
    return payload, [first["id"], second["id"]]


VARIANTS: dict[str, Callable[[str], tuple[dict[str, Any], list[str]]]] = {
    "contacts_without_profile_or_wa_id": _no_profile_no_wa_id,
    "integer_numbers_in_order_and_timestamp": _integer_numbers,
    "message_without_type": _no_type,
    "request_welcome_unknown_and_new_types": _unknown_types,
    "value_level_errors_without_messages": _value_errors_only,
    "statuses_with_contacts_conversation_pricing_or_none": _statuses_with_extras,
    "several_changes_and_calls_in_one_value": _everything_together,
}


@pytest.mark.parametrize("build", VARIANTS.values(), ids=VARIANTS.keys())
async def test_metas_documented_variants_are_answered_200_and_every_message_is_stored(
    build: Callable[[str], tuple[dict[str, Any], list[str]]],
    webhooks: WebhookClient,
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    payload, wamids = build(phone)

    response = await webhooks.post(payload)

    assert response.status_code == 200, response.text
    assert "unparsed" not in response.json()
    for wamid in wamids:
        assert await stored(db, wamid) is not None, wamid


async def test_unknown_types_are_answered_as_unsupported(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    sent = message(phone, "hologram", hologram={"id": "h1"})
    assert (await webhooks.post(envelope([sent]))).status_code == 200
    await eventually(lambda: processed(db, sent["id"]), within=15)
    [reply] = graph.messages_to(phone)
    assert "can't read this kind of message" in (reply.text or "")


# -- one malformed message never costs its siblings ---------------------------------------


async def test_a_malformed_message_is_kept_unparsed_and_its_siblings_are_stored_and_answered(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    good, later = text_message(phone, "first"), text_message(phone, "last")
    no_sender = text_message(phone, f"who am I, {phone}")
    del no_sender["from"]
    wrong_shape = text_message(phone, "x")
    wrong_shape["text"] = "a string where Meta sends an object"
    no_id = text_message(phone, "no id")
    del no_id["id"]
    value = messages_value(messages=[good, no_sender, wrong_shape, no_id, later])

    response = await webhooks.post(body(("messages", value)))

    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 2, "duplicates": 0, "statuses": 0, "unparsed": 3}
    kept = await db.fetch(
        "SELECT field, error, raw FROM webhook_unparsed WHERE raw LIKE $1 ORDER BY id",
        f"%{phone}%",
    )
    assert [orjson.loads(r["raw"]) for r in kept] == [no_sender, wrong_shape, no_id]
    assert "sender" in kept[0]["error"]
    assert kept[1]["error"].startswith("text")
    assert kept[2]["error"].startswith("id")

    async def both_answered() -> bool:
        return len(graph.messages_to(phone)) == 2

    await eventually(both_answered, within=15)
    assert [m.text for m in graph.messages_to(phone)] == ["Echo: first", "Echo: last"]

    async def logged() -> bool:
        return bool(
            await db.fetchval(
                """SELECT count(*) FROM webhook_events WHERE outcome = 'partial'
                   AND detail LIKE '3 unparsed%' AND received_at > now() - interval '1 minute'"""
            )
        )

    await eventually(logged)


@pytest.mark.parametrize(
    "bad_change",
    [
        pytest.param({"field": "messages", "value": {"messages": []}}, id="no_metadata"),
        pytest.param({"field": "messages"}, id="no_value"),
        pytest.param("not an object", id="change_not_an_object"),
    ],
)
async def test_a_bad_change_is_unparsed_and_the_other_changes_are_stored(
    bad_change: Any, webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    good = text_message(phone, "still here")
    payload = body(("messages", messages_value(messages=[good])))
    payload["entry"][0]["changes"].insert(0, bad_change)

    response = await webhooks.post(payload)

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert await stored(db, good["id"]) is not None
