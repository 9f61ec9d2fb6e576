"""The conversations API: filters and pages, threads with status history, and what
operators do to a conversation (take over, return, reply, assign, label, close)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest_asyncio

from fakes.graph_api import GraphApiFake
from tests.api_fixtures import Operator
from tests.conftest import APP_SECRET, PRIMARY_MODEL
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message


@pytest_asyncio.fixture
async def customer(api_url: str) -> WebhookClient:
    client = WebhookClient(api_url, APP_SECRET)
    yield client  # type: ignore[misc]
    await client.close()


async def conversation_of(api: httpx.AsyncClient, op: Operator, phone: str) -> dict:
    found: list[dict] = []

    async def listed() -> bool:
        page = await api.get("/api/conversations", params={"q": phone}, headers=op.headers)
        found[:] = [c for c in page.json()["conversations"] if c["customer_phone"] == phone]
        return bool(found)

    await eventually(listed)
    return found[0]


async def replies(graph: GraphApiFake, phone: str) -> list[str]:
    return [m.text or "" for m in graph.messages_to(phone)]


async def write(customer: WebhookClient, phone: str, text: str) -> None:
    response = await customer.post(envelope([text_message(phone, text)], name=f"Cust {phone}"))
    assert response.status_code == 200, response.text


async def processed(db: asyncpg.Pool, phone: str, text: str) -> bool:
    return bool(
        await db.fetchval(
            """SELECT m.processed_at IS NOT NULL FROM messages m
           JOIN conversations c ON c.id = m.conversation_id
           WHERE c.customer_phone = $1 AND m.text = $2""",
            phone,
            text,
        )
    )


async def test_handoff_stops_the_bot_and_return_to_bot_resumes_it(
    api: httpx.AsyncClient,
    agent: Operator,
    customer: WebhookClient,
    graph: GraphApiFake,
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    await write(customer, phone, "first question")
    await eventually(lambda: _count(graph, phone, 1))
    conv = await conversation_of(api, agent, phone)

    taken = await api.post(
        f"/api/conversations/{conv['id']}/handoff", json={}, headers=agent.headers
    )
    assert taken.status_code == 200
    assert taken.json()["state"] == "human"
    assert taken.json()["assigned_user_id"] == agent.id  # the one taking over is assigned

    await write(customer, phone, "are you a bot?")
    await eventually(lambda: processed(db, phone, "are you a bot?"))
    await asyncio.sleep(0.5)
    assert await replies(graph, phone) == ["Echo: first question"]  # the bot stayed quiet

    back = await api.post(f"/api/conversations/{conv['id']}/return", json={}, headers=agent.headers)
    assert back.json()["state"] == "bot"
    await write(customer, phone, "hello again")
    await eventually(lambda: _count(graph, phone, 2))
    assert (await replies(graph, phone))[-1] == "Echo: hello again"


async def test_an_agent_reply_reaches_whatsapp_and_is_stored_with_the_agent_and_statuses(
    api: httpx.AsyncClient,
    agent: Operator,
    customer: WebhookClient,
    graph: GraphApiFake,
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    await write(customer, phone, "Where is my parcel?")
    await eventually(lambda: _count(graph, phone, 1))
    conv = await conversation_of(api, agent, phone)
    await api.post(f"/api/conversations/{conv['id']}/handoff", json={}, headers=agent.headers)

    sent = await api.post(
        f"/api/conversations/{conv['id']}/reply",
        json={"text": "Hi, Sam here. How can I help?"},
        headers=agent.headers,
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["delivered"] is True
    assert body["message"]["sent_by_user_id"] == agent.id
    assert await replies(graph, phone) == [
        "Echo: Where is my parcel?",
        "Hi, Sam here. How can I help?",
    ]
    assert [s["status"] for s in body["message"]["statuses"]] == ["pending", "sending", "sent"]

    # Meta reports delivery later; the thread shows the whole history.
    wamid = graph.messages_to(phone)[-1].wamid
    status = {
        "id": wamid,
        "status": "delivered",
        "timestamp": str(int(time.time())),
        "recipient_id": phone,
    }
    assert (await customer.post(envelope(statuses=[status]))).status_code == 200
    thread = (await api.get(f"/api/conversations/{conv['id']}", headers=agent.headers)).json()
    mine = next(m for m in thread["messages"] if m["id"] == body["message"]["id"])
    assert mine["status"] == "delivered"
    assert [s["status"] for s in mine["statuses"]] == ["pending", "sending", "sent", "delivered"]
    bot = next(m for m in thread["messages"] if m["direction"] == "outbound" and m["model"])
    assert bot["model"] == PRIMARY_MODEL and bot["sent_by_user_id"] is None
    inbound = thread["messages"][0]
    assert [s["status"] for s in inbound["statuses"]] == ["received", "processed"]


async def test_a_free_form_reply_outside_the_24_hour_window_is_refused(
    api: httpx.AsyncClient,
    agent: Operator,
    customer: WebhookClient,
    graph: GraphApiFake,
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    await write(customer, phone, "old question")
    conv = await conversation_of(api, agent, phone)
    await eventually(lambda: processed(db, phone, "old question"))
    await db.execute(
        "UPDATE conversations SET last_customer_message_at = $2 WHERE id = $1",
        conv["id"],
        datetime.now(UTC) - timedelta(hours=25),
    )
    response = await api.post(
        f"/api/conversations/{conv['id']}/reply", json={"text": "late"}, headers=agent.headers
    )
    assert response.status_code == 409
    assert "24 hours" in response.json()["error"]
    assert "late" not in await replies(graph, phone)


async def test_filters_find_exactly_the_matching_conversations(
    api: httpx.AsyncClient,
    agent: Operator,
    admin: Operator,
    customer: WebhookClient,
    db: asyncpg.Pool,
) -> None:
    phones = [new_phone() for _ in range(4)]
    for i, phone in enumerate(phones):
        await write(customer, phone, f"filter-probe {phones[0]} number {i}")
    convs = [await conversation_of(api, agent, p) for p in phones]
    label = f"f{phones[0][-6:]}"
    for conv in convs[:3]:
        await api.post(
            f"/api/conversations/{conv['id']}/labels", json={"label": label}, headers=agent.headers
        )
    await api.post(f"/api/conversations/{convs[0]['id']}/handoff", json={}, headers=agent.headers)
    await api.post(f"/api/conversations/{convs[1]['id']}/close", json={}, headers=agent.headers)
    await api.post(
        f"/api/conversations/{convs[2]['id']}/assign",
        json={"user_id": admin.id},
        headers=agent.headers,
    )

    async def ids(**params: str) -> set[int]:
        response = await api.get("/api/conversations", params=params, headers=agent.headers)
        assert response.status_code == 200, response.text
        return {c["id"] for c in response.json()["conversations"]}

    wanted = [c["id"] for c in convs]
    assert await ids(label=label) == set(wanted[:3])
    assert await ids(label=label, state="human") == {wanted[0]}
    assert await ids(label=label, state="closed") == {wanted[1]}
    assert await ids(label=label, assigned="me") == {wanted[0]}
    assert await ids(label=label, assigned=str(admin.id)) == {wanted[2]}
    assert await ids(label=label, assigned="none") == {wanted[1]}
    # Text search looks into message text too.
    assert await ids(q=f"filter-probe {phones[0]}") == set(wanted)
    assert await ids(q=f"{phones[0]} number 3") == {wanted[3]}
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert await ids(label=label, updated_since=later) == set()

    removed = await api.delete(
        f"/api/conversations/{wanted[0]}/labels/{label}", headers=agent.headers
    )
    assert label not in removed.json()["labels"]
    assert await ids(label=label) == set(wanted[1:3])


async def test_cursor_pages_cover_every_conversation_once_in_order(
    api: httpx.AsyncClient,
    agent: Operator,
    customer: WebhookClient,
) -> None:
    phones = [new_phone() for _ in range(7)]
    label = f"p{phones[0][-6:]}"
    for phone in phones:
        await write(customer, phone, "page me")
        conv = await conversation_of(api, agent, phone)
        await api.post(
            f"/api/conversations/{conv['id']}/labels", json={"label": label}, headers=agent.headers
        )
    for sort, order in (("updated_at", "desc"), ("created_at", "asc"), ("id", "desc")):
        seen: list[dict] = []
        cursor = None
        while True:
            params = {"label": label, "limit": "3", "sort": sort, "order": order}
            if cursor:
                params["cursor"] = cursor
            page = (
                await api.get("/api/conversations", params=params, headers=agent.headers)
            ).json()
            seen += page["conversations"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 7 and len({c["id"] for c in seen}) == 7
        keys = [(c[sort], c["id"]) for c in seen]
        assert keys == sorted(keys, reverse=order == "desc")
    bad = await api.get("/api/conversations", params={"cursor": "!!"}, headers=agent.headers)
    assert bad.status_code == 422


async def test_messages_page_backwards_from_the_newest(
    api: httpx.AsyncClient,
    agent: Operator,
    customer: WebhookClient,
    graph: GraphApiFake,
) -> None:
    phone = new_phone()
    for i in range(3):
        await write(customer, phone, f"m{i}")
    await eventually(lambda: _count(graph, phone, 3))
    conv = await conversation_of(api, agent, phone)
    url = f"/api/conversations/{conv['id']}/messages"
    newest = (await api.get(url, params={"limit": 4}, headers=agent.headers)).json()
    older = (
        await api.get(
            url, params={"limit": 4, "before": newest["next_before"]}, headers=agent.headers
        )
    ).json()
    both = older["messages"] + newest["messages"]
    assert len(newest["messages"]) == 4 and len(older["messages"]) == 2
    assert [m["id"] for m in both] == sorted(m["id"] for m in both)  # oldest first, no overlap
    assert sorted(m["text"] for m in both) == ["Echo: m0", "Echo: m1", "Echo: m2", "m0", "m1", "m2"]
    assert older["next_before"] is None


async def test_assignment_checks_the_operator_exists(
    api: httpx.AsyncClient,
    agent: Operator,
    customer: WebhookClient,
) -> None:
    phone = new_phone()
    await write(customer, phone, "assign me")
    conv = await conversation_of(api, agent, phone)
    url = f"/api/conversations/{conv['id']}/assign"
    assert (await api.post(url, json={"user_id": 10**12}, headers=agent.headers)).status_code == 422
    assert (await api.post(url, json={"user_id": agent.id}, headers=agent.headers)).json()[
        "assigned_user_id"
    ] == agent.id
    assert (await api.post(url, json={"user_id": None}, headers=agent.headers)).json()[
        "assigned_user_id"
    ] is None


async def test_unknown_conversations_are_404(api: httpx.AsyncClient, agent: Operator) -> None:
    for method, path in (
        ("GET", "/api/conversations/999999999"),
        ("POST", "/api/conversations/999999999/close"),
        ("GET", "/api/conversations/abc"),
        ("GET", "/api/conversations/99999999999999999999999"),
    ):
        response = await api.request(method, path, json={}, headers=agent.headers)
        assert response.status_code == 404, path


async def test_canned_responses_can_be_created_read_updated_and_deleted(
    api: httpx.AsyncClient,
    agent: Operator,
) -> None:
    title = f"greeting {new_phone()}"
    created = await api.post(
        "/api/canned-responses", json={"title": title, "body": "Hello!"}, headers=agent.headers
    )
    assert created.status_code == 201
    one = f"/api/canned-responses/{created.json()['id']}"
    dup = await api.post(
        "/api/canned-responses", json={"title": title, "body": "again"}, headers=agent.headers
    )
    assert dup.status_code == 409
    updated = await api.put(
        one, json={"title": title, "body": "Hello there!"}, headers=agent.headers
    )
    assert updated.json()["body"] == "Hello there!"
    listed = (await api.get("/api/canned-responses", headers=agent.headers)).json()
    assert any(r["title"] == title for r in listed["canned_responses"])
    assert (await api.delete(one, headers=agent.headers)).status_code == 200
    assert (await api.get(one, headers=agent.headers)).status_code == 404


def _count(graph: GraphApiFake, phone: str, n: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return len(graph.messages_to(phone)) >= n

    return check()


async def test_an_agent_reply_records_the_provider_that_sends_it_not_the_customers_last(
    api: httpx.AsyncClient,
    agent: Operator,
    customer: WebhookClient,
    graph: GraphApiFake,
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    await write(customer, phone, "Hello from the Cloud API")
    await eventually(lambda: _count(graph, phone, 1))
    conv = await conversation_of(api, agent, phone)
    # The customer's latest message came in through MSG91 (a number moved between providers).
    await db.execute(
        """INSERT INTO messages (conversation_id, direction, provider, provider_message_id,
                                 type, text, status, processed_at)
           VALUES ($1, 'inbound', 'msg91', $2, 'text', 'via msg91', 'received', now())""",
        conv["id"],
        f"msg91:{phone}",
    )
    sent = await api.post(
        f"/api/conversations/{conv['id']}/reply", json={"text": "Hi!"}, headers=agent.headers
    )
    assert sent.status_code == 201, sent.text
    provider = await db.fetchval(
        "SELECT provider FROM messages WHERE id = $1", sent.json()["message"]["id"]
    )
    assert provider == "whatsapp_cloud"  # what this deployment sends with
