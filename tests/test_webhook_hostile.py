"""One hostile body must not fail a whole group commit (issue 11 §3.8).

Concurrent webhook requests share one transaction (gateway.ingest). A value Postgres
refuses, in one of them, used to fail the commit for all, so unrelated requests got 503
again on each of Meta's retries. The edge now cleans such values, and a row Postgres still
refuses is isolated: its request is kept raw and the others are stored as usual.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from fakes.graph_api import GraphApiFake
from gateway.ingest import InboxWriter, PoolHolder
from gateway.whatsapp import ParsedWebhook
from store.records import InboundMessage, InboxItem, StatusUpdate
from tests.fixtures_whatsapp import status_failed
from tests.support import (
    BUSINESS_NUMBER,
    WebhookClient,
    envelope,
    eventually,
    message,
    new_phone,
    new_wamid,
    text_message,
)


def _nul_in_wamid(phone: str) -> dict[str, Any]:
    return envelope([text_message(phone, "nul id", wamid=new_wamid() + "\x00x")])


def _nul_in_phone(phone: str) -> dict[str, Any]:
    return envelope([text_message(phone + "\x00", "nul phone")])


def _nul_in_type(phone: str) -> dict[str, Any]:
    return envelope([message(phone, "te\x00xt", text={"body": "nul type"})])


def _nul_in_name_and_field(phone: str) -> dict[str, Any]:
    body = envelope([text_message(phone, "nul name")], name="Ada\x00")
    body["entry"][0]["changes"].append({"field": "acc\x00ount_update", "value": {"k": "\x00"}})
    return body


def _huge_error_code(phone: str) -> dict[str, Any]:
    status = status_failed(new_wamid(), phone)
    status["errors"][0]["code"] = 2**40
    return envelope(statuses=[status])


def _huge_callback_data(phone: str) -> dict[str, Any]:
    status = status_failed(new_wamid(), phone)
    # Digits that int() refuses (over 4300), then digits that are not ASCII.
    status["biz_opaque_callback_data"] = "7" * 100_000
    other = status_failed(new_wamid(), phone)
    other["biz_opaque_callback_data"] = "²³.¹"
    return envelope(statuses=[status, other])


def _huge_ids(phone: str) -> dict[str, Any]:
    # Over the size of a btree index entry: Postgres would refuse the unique index.
    # Random, so that compression does not bring it under the limit.
    wamid = "wamid." + secrets.token_urlsafe(9_000)
    return envelope([text_message(phone, "long id", wamid=wamid)])


HOSTILE: dict[str, Callable[[str], dict[str, Any]]] = {
    "nul_in_wamid": _nul_in_wamid,
    "nul_in_phone": _nul_in_phone,
    "nul_in_type": _nul_in_type,
    "nul_in_name_and_field": _nul_in_name_and_field,
    "error_code_over_2_31": _huge_error_code,
    "huge_and_unicode_callback_data": _huge_callback_data,
    "id_over_an_index_entry": _huge_ids,
}


@pytest.mark.parametrize("build", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_body_is_answered_200_and_costs_concurrent_requests_nothing(
    build: Callable[[str], dict[str, Any]], webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phones = [new_phone() for _ in range(8)]
    goods = [text_message(p, "an ordinary question") for p in phones]
    hostile = build(new_phone())

    # Sent together, so the writers put them in the same group commit.
    responses = await asyncio.gather(
        webhooks.post(hostile), *(webhooks.post(envelope([g])) for g in goods)
    )

    assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses]
    for good in goods:
        assert (
            await db.fetchval(
                "SELECT count(*) FROM messages WHERE provider_message_id = $1", good["id"]
            )
            == 1
        )
    again = await webhooks.post(hostile)  # Meta's retry
    assert again.status_code == 200, again.text


async def test_a_nul_is_removed_and_the_message_is_stored_and_answered(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    wamid = new_wamid()

    response = await webhooks.post(
        envelope([text_message(phone, "he\x00llo", wamid=wamid + "\x00")])
    )

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    row = await db.fetchrow("SELECT text FROM messages WHERE provider_message_id = $1", wamid)
    assert row is not None and row["text"] == "hello"

    async def answered() -> bool:
        return len(graph.messages_to(phone)) == 1

    await eventually(answered, within=15)


# -- past the edge: a row Postgres refuses is isolated ------------------------------------


def _inbound(phone: str, text: str) -> InboundMessage:
    return InboundMessage(
        provider="whatsapp_cloud",
        provider_message_id=new_wamid(),
        business_number=BUSINESS_NUMBER,
        customer_phone=phone,
        type="text",
        text=text,
        payload={"text": {"body": text}},
        timestamp=datetime.now(tz=UTC),
    )


@pytest.mark.parametrize(
    "refused",
    [
        pytest.param(ParsedWebhook(messages=[_inbound("49\x00123", "nul")]), id="nul_phone"),
        pytest.param(
            ParsedWebhook(
                statuses=[
                    StatusUpdate(new_wamid(), "failed", datetime.now(tz=UTC), error_code=2**40)
                ]
            ),
            id="int32_overflow",
        ),
    ],
)
async def test_a_row_postgres_refuses_is_kept_raw_and_its_batch_is_stored(
    refused: ParsedWebhook, database_url: str, db: asyncpg.Pool
) -> None:
    stored: list[InboxItem] = []
    pools = PoolHolder(database_url, min_size=1, max_size=2)
    writer = InboxWriter(pools, stored.extend)
    good = [ParsedWebhook(messages=[_inbound(new_phone(), f"good {i}")]) for i in range(3)]
    before = await db.fetchval("SELECT coalesce(max(id), 0) FROM webhook_unparsed")
    # Queued before the writer runs: one batch holds them all.
    tasks = [asyncio.create_task(writer.submit(p)) for p in (good[0], refused, *good[1:])]
    await asyncio.sleep(0)
    writer.start()
    try:
        results = await asyncio.wait_for(asyncio.gather(*tasks), 20)
    finally:
        await writer.stop()
        await pools.close()

    assert [len(r) for r in results] == [1, 0, 1, 1]
    assert {i.text for i in stored} == {"good 0", "good 1", "good 2"}
    assert refused.refused is not None
    kept = await db.fetch("SELECT field, error FROM webhook_unparsed WHERE id > $1", before)
    assert [r["field"] for r in kept] == ["request"]


async def test_a_status_with_callback_data_of_non_ascii_digits_is_applied_not_kept_raw(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    before = await db.fetchval("SELECT coalesce(max(id), 0) FROM webhook_unparsed")
    status = status_failed(new_wamid(), new_phone())
    status["biz_opaque_callback_data"] = "²³.¹"

    response = await webhooks.post(envelope(statuses=[status]))

    assert response.status_code == 200, response.text
    assert "unparsed" not in response.json()
    assert await db.fetchval("SELECT count(*) FROM webhook_unparsed WHERE id > $1", before) == 0
