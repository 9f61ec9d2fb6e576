"""The webhook fields besides `messages` (issue 11 §1): each answered 200 and logged under
its name; the operator's ones on the dashboard; past messages stored and never answered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from fakes.graph_api import GraphApiFake
from tests.api_fixtures import Operator
from tests.conftest import APP_SECRET
from tests.fixtures_fields import (
    LOGGED_ONLY_FIELDS,
    account_update,
    body,
    echo,
    history,
    marketing_stop,
    number_quality,
    only_logged,
    template_quality,
    template_status,
)
from tests.support import WebhookClient, eventually, new_phone, new_wamid


@pytest_asyncio.fixture
async def meta(api_url: str) -> AsyncIterator[WebhookClient]:
    """Meta, posting to the gateway that also serves the operator API."""
    client = WebhookClient(api_url, APP_SECRET)
    yield client
    await client.close()


async def logged_kinds(db: asyncpg.Pool, since_id: int) -> list[str]:
    rows = await db.fetch("SELECT kind FROM webhook_events WHERE id > $1 ORDER BY id", since_id)
    return [r["kind"] for r in rows]


async def last_event_id(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT coalesce(max(id), 0) FROM webhook_events"))


@pytest.mark.parametrize("field", LOGGED_ONLY_FIELDS)
async def test_a_field_we_only_log_is_answered_200_and_logged_under_its_name(
    field: str, webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    since = await last_event_id(db)

    response = await webhooks.post(body(only_logged(field)))

    assert response.status_code == 200, response.text

    async def logged() -> bool:
        return field in await logged_kinds(db, since)

    await eventually(logged)


async def test_template_account_number_and_marketing_notices_reach_the_dashboard_once(
    meta: WebhookClient, api: httpx.AsyncClient, agent: Operator
) -> None:
    template = f"order_update_{new_wamid()[-6:]}"
    phone = new_phone()
    changes = [
        template_status(template),
        template_quality(template),
        number_quality(),
        account_update(),
        marketing_stop(phone),
    ]
    payload = body(*changes)

    for _ in range(2):  # Meta retries: stored once
        assert (await meta.post(payload)).status_code == 200, payload

    page = await api.get("/api/account-events?limit=200", headers=agent.headers)
    assert page.status_code == 200, page.text
    events = [e for e in page.json()["events"] if _ours(e, template, phone)]
    got = sorted((e["field"], e["subject"], e["event"]) for e in events)
    assert got == [
        ("message_template_quality_update", template, "YELLOW"),
        ("message_template_status_update", template, "REJECTED"),
        ("user_preferences", phone, "marketing_messages/stop"),
    ]
    numbers = await api.get(
        "/api/account-events?field=phone_number_quality_update&limit=200", headers=agent.headers
    )
    nonce = changes[2][1]["nonce"]
    [flagged] = [e for e in numbers.json()["events"] if e["detail"].get("nonce") == nonce]
    assert (flagged["event"], flagged["detail"]["current_limit"]) == ("FLAGGED", "TIER_1K")


def _ours(event: dict[str, Any], template: str, phone: str) -> bool:
    return event["subject"] in (template, phone)


async def test_history_and_echoes_are_stored_as_past_messages_and_never_answered(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    payload = body(
        history(phone, customer_text="old question", business_text="old answer"),
        echo(phone, "written in the Business app"),
    )

    response = await webhooks.post(payload)

    assert response.status_code == 200, response.text
    rows = await db.fetch(
        """SELECT m.direction, m.text, m.status, m.processed_at IS NOT NULL AS done
           FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE c.customer_phone = $1 ORDER BY m.provider_timestamp""",
        phone,
    )
    assert [(r["direction"], r["text"], r["status"]) for r in rows] == [
        ("inbound", "old question", "processed"),
        ("outbound", "old answer", "sent"),
        ("outbound", "written in the Business app", "sent"),
    ]
    assert rows[0]["done"]
    window = await db.fetchval(
        "SELECT last_customer_message_at FROM conversations WHERE customer_phone = $1", phone
    )
    assert window is None  # a month-old message opens no customer-service window
    await asyncio.sleep(0.5)
    assert graph.messages_to(phone) == []
