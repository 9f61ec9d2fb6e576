"""The webhook's front door: Meta's verification handshake, signatures and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import httpx
import orjson
import pytest_asyncio

from config import Settings
from fakes.server import FakeServer
from gateway.app import WEBHOOK_PATH, create_app
from gateway.signature import HEADER, sign
from store.records import InboxItem
from tests.conftest import APP_SECRET, VERIFY_TOKEN
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message


async def stored_count(db: asyncpg.Pool, phone: str) -> int:
    return int(
        await db.fetchval(
            """SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
               WHERE c.customer_phone = $1""",
            phone,
        )
    )


# -- verification (GET) ----------------------------------------------------------------


async def test_verification_with_right_token_echoes_the_challenge(webhooks: WebhookClient) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await webhooks.http.get(WEBHOOK_PATH, params=params)
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


async def test_verification_with_wrong_token_is_forbidden(webhooks: WebhookClient) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "42"}
    response = await webhooks.http.get(WEBHOOK_PATH, params=params)
    assert response.status_code == 403
    assert "42" not in response.text


async def test_verification_with_missing_parameters_is_refused(webhooks: WebhookClient) -> None:
    for params in (
        {},
        {"hub.mode": "subscribe", "hub.challenge": "42"},
        {"hub.verify_token": VERIFY_TOKEN},
    ):
        response = await webhooks.http.get(WEBHOOK_PATH, params=params)
        assert response.status_code == 400
        assert "error" in response.json()


# -- signatures ------------------------------------------------------------------------


async def test_valid_signature_is_accepted_and_stored(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    response = await webhooks.post(envelope([text_message(phone, "signed")]))
    assert response.status_code == 200
    assert await stored_count(db, phone) == 1


async def test_missing_signature_is_unauthorized_and_not_stored(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    raw = orjson.dumps(envelope([text_message(phone, "unsigned")]))
    response = await webhooks.http.post(WEBHOOK_PATH, content=raw)
    assert response.status_code == 401
    assert HEADER in response.json()["error"]
    assert await stored_count(db, phone) == 0


async def test_wrong_signature_is_forbidden_and_not_stored(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    raw = orjson.dumps(envelope([text_message(phone, "forged")]))
    response = await webhooks.http.post(
        WEBHOOK_PATH, content=raw, headers={HEADER: sign(raw, "not-the-app-secret")}
    )
    assert response.status_code == 403
    assert await stored_count(db, phone) == 0


async def test_tampered_body_is_forbidden_and_not_stored(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    raw = orjson.dumps(envelope([text_message(phone, "pay 10")]))
    tampered = raw.replace(b"pay 10", b"pay 99")
    response = await webhooks.http.post(
        WEBHOOK_PATH, content=tampered, headers={HEADER: sign(raw, APP_SECRET)}
    )
    assert response.status_code == 403
    assert await stored_count(db, phone) == 0


# -- bad input -------------------------------------------------------------------------


async def test_malformed_json_gets_400_with_a_json_error(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    response = await webhooks.post(b'{"object": "whatsapp_business_account", "entry": [')
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]


async def test_body_over_the_limit_gets_413_and_nothing_is_stored(
    webhooks: WebhookClient, db: asyncpg.Pool, settings: Settings
) -> None:
    phone = new_phone()
    padding = "x" * (settings.webhook_max_body_bytes + 10)
    response = await webhooks.post(envelope([text_message(phone, padding)]))
    assert response.status_code == 413
    assert await stored_count(db, phone) == 0


async def test_rejections_are_written_to_the_webhook_log(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    count_sql = "SELECT count(*) FROM webhook_events WHERE outcome = 'bad_signature'"
    before = await db.fetchval(count_sql)
    raw = orjson.dumps(envelope([text_message(new_phone(), "forged")]))
    await webhooks.http.post(WEBHOOK_PATH, content=raw, headers={HEADER: "sha256=00"})

    async def logged() -> bool:
        return int(await db.fetchval(count_sql)) > int(before)

    await eventually(logged, within=10)
    detail = await db.fetchval(
        "SELECT detail FROM webhook_events WHERE outcome = 'bad_signature' ORDER BY id DESC LIMIT 1"
    )
    assert APP_SECRET not in (detail or "")


# -- Postgres down ---------------------------------------------------------------------


class _RecordingDispatcher:
    def __init__(self) -> None:
        self.items: list[InboxItem] = []

    def submit(self, items: Sequence[InboxItem]) -> None:
        self.items.extend(items)


@pytest_asyncio.fixture
async def gateway_without_postgres(
    settings: Settings,
) -> AsyncIterator[tuple[str, _RecordingDispatcher]]:
    dispatcher = _RecordingDispatcher()
    # Nothing listens on port 1: every connection attempt is refused.
    app = create_app(settings, dispatcher, database_url="postgresql://postgres@127.0.0.1:1/none")
    async with FakeServer(app) as server:
        yield server.url, dispatcher


async def test_postgres_unreachable_answers_503_and_claims_nothing(
    gateway_without_postgres: tuple[str, _RecordingDispatcher],
) -> None:
    url, dispatcher = gateway_without_postgres
    client = WebhookClient(url, APP_SECRET)
    try:
        response = await client.post(envelope([text_message(new_phone(), "is anyone there?")]))
    finally:
        await client.close()
    assert response.status_code == 503
    assert "retry" in response.json()["error"]
    assert dispatcher.items == []

    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/health")).status_code == 200


async def test_a_nul_character_in_a_message_is_dropped_and_the_message_stored(
    webhooks: WebhookClient, db: asyncpg.Pool
) -> None:
    # Postgres refuses NUL in text and JSONB; refusing the row would make Meta retry forever.
    phone = new_phone()
    response = await webhooks.post(envelope([text_message(phone, "hel\u0000lo")]))
    assert response.status_code == 200
    stored = await db.fetchrow(
        """SELECT m.text, m.payload FROM messages m JOIN conversations c
           ON c.id = m.conversation_id WHERE c.customer_phone = $1""",
        phone,
    )
    assert stored["text"] == "hello"
    assert stored["payload"]["text"]["body"] == "hello"
