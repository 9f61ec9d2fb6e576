"""MSG91 as the second provider: its webhook, its send API, and a whole round trip."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from actors.conversation.router import ShardRouter
from actors.delivery.providers import OutboundMessage
from actors.delivery.providers.errors import SendError
from actors.delivery.providers.msg91 import Msg91Provider
from actors.runtime import start_actors
from actors.wire import Content
from config import Settings
from fakes.msg91 import Msg91Fake
from fakes.server import FakeServer
from gateway.app import create_app
from tests.conftest import MSG91_SECRET
from tests.support import eventually, new_phone

INTEGRATED = "919800000001"
AUTH_KEY = "test-msg91-authkey"


def inbound(phone: str, text: str, *, msg_id: str | None = None) -> dict[str, Any]:
    return {
        "customerNumber": phone,
        "integratedNumber": INTEGRATED,
        "customerName": "Asha",
        "uuid": msg_id or uuid.uuid4().hex,
        "ts": str(int(time.time())),
        "contentType": "text",
        "text": text,
        "direction": "inbound",
    }


def msg91_settings(settings: Settings, url: str) -> Settings:
    """The test settings with MSG91 instead of the Cloud API, sending to the fake at `url`."""
    return settings.model_copy(
        update={
            "whatsapp_access_token": None,
            "whatsapp_phone_number_id": None,
            "msg91_auth_key": SecretStr(AUTH_KEY),
            "msg91_sender_id": INTEGRATED,
            "msg91_base_url": url,
            "shard_count": 1,
        }
    )


@pytest_asyncio.fixture
async def msg91() -> AsyncIterator[tuple[Msg91Fake, str]]:
    fake = Msg91Fake(auth_key=AUTH_KEY)
    async with FakeServer(fake.app) as server:
        yield fake, server.url


async def test_a_text_is_sent_from_the_integrated_number_with_the_authkey(
    msg91: tuple[Msg91Fake, str],
) -> None:
    fake, url = msg91
    provider = Msg91Provider(base_url=url, auth_key=AUTH_KEY, integrated_number="+" + INTEGRATED)
    try:
        provider_id = await provider.send(
            OutboundMessage(INTEGRATED, "+4915550001", Content.plain("hi"), "1")
        )
        template = Content("template", "", template_name="order_update", template_params=("42",))
        await provider.send(OutboundMessage(INTEGRATED, "4915550001", template, "2"))
    finally:
        await provider.close()
    text, sent_template = fake.sent
    assert provider_id == f"msg91:{text.request_id}"
    assert (text.integrated_number, text.to, text.content_type, text.text) == (
        INTEGRATED,
        "4915550001",
        "text",
        "hi",
    )
    spec = sent_template.body["payload"]["template"]
    assert spec["name"] == "order_update"
    assert spec["language"] == {"code": "en", "policy": "deterministic"}
    assert spec["to_and_components"] == [
        {"to": ["4915550001"], "components": {"body_1": {"type": "text", "value": "42"}}}
    ]


async def test_msg91_rate_limit_and_outages_are_retried_and_bad_requests_are_not(
    msg91: tuple[Msg91Fake, str],
) -> None:
    fake, url = msg91
    provider = Msg91Provider(base_url=url, auth_key=AUTH_KEY, integrated_number=INTEGRATED)
    try:
        fake.fail_next(1, status=429, message="Too many requests")
        fake.fail_next(1, status=502, message="Bad gateway")
        await provider.send(
            OutboundMessage(INTEGRATED, "4915550002", Content.plain("retry me"), "3")
        )
        assert fake.attempts == 3 and len(fake.sent) == 1

        fake.fail_next(1, status=400, message="Invalid recipient")
        with pytest.raises(SendError) as refused:
            await provider.send(OutboundMessage(INTEGRATED, "4915550003", Content.plain("no"), "4"))
        assert refused.value.code == 400 and not refused.value.retryable
        assert fake.attempts == 4
    finally:
        await provider.close()


async def test_the_msg91_webhook_checks_its_secret_and_stores_messages_and_reports(
    gateway: str, db: asyncpg.Pool
) -> None:
    phone = new_phone()
    async with httpx.AsyncClient(base_url=gateway) as http:
        body = inbound(phone, "namaste")
        assert (await http.post("/api/webhooks/msg91", json=body)).status_code == 401
        wrong = {"X-Msg91-Secret": "guess"}
        assert (await http.post("/api/webhooks/msg91", json=body, headers=wrong)).status_code == 403
        ok = await http.post("/api/webhooks/msg91", params={"secret": MSG91_SECRET}, json=body)
        assert ok.status_code == 200 and ok.json()["stored"] == 1
        again = await http.post("/api/webhooks/msg91", params={"secret": MSG91_SECRET}, json=body)
        assert again.json() == {"stored": 0, "duplicates": 1, "statuses": 0}
        bad = await http.post(
            "/api/webhooks/msg91", params={"secret": MSG91_SECRET}, json={"text": "who?"}
        )
        assert bad.status_code == 400 and "customerNumber" in bad.json()["error"]

        row = await db.fetchrow(
            """SELECT m.provider, m.text, m.type, c.business_number, c.customer_name
               FROM messages m JOIN conversations c ON c.id = m.conversation_id
               WHERE c.customer_phone = $1 AND m.direction = 'inbound'""",
            phone,
        )
        assert dict(row) == {
            "provider": "msg91",
            "text": "namaste",
            "type": "text",
            "business_number": INTEGRATED,
            "customer_name": "Asha",
        }

        # A delivery report for one of our sends moves its status forward.
        conversation_id = await db.fetchval(
            "SELECT id FROM conversations WHERE customer_phone = $1", phone
        )
        await db.execute(
            """INSERT INTO messages (conversation_id, direction, provider, provider_message_id,
                                     type, text, status)
               VALUES ($1, 'outbound', 'msg91', 'msg91:req-77', 'text', 'hello', 'sent')""",
            conversation_id,
        )
        report = {"requestId": "req-77", "status": "delivered", "direction": "outbound"}
        answer = await http.post(
            "/api/webhooks/msg91", headers={"X-Msg91-Secret": MSG91_SECRET}, json=report
        )
        assert answer.json()["statuses"] == 1
    status = await db.fetchval(
        "SELECT status FROM messages WHERE provider_message_id = 'msg91:req-77'"
    )
    assert status == "delivered"


async def test_an_msg91_number_answers_end_to_end_through_ray(
    settings: Settings,
    ray_cluster: None,
    database_url: str,
    redis_url: str,
    msg91: tuple[Msg91Fake, str],
) -> None:
    fake, url = msg91
    m91 = msg91_settings(settings, url)
    assert m91.uses_msg91 and not m91.uses_sandbox_delivery
    actors = start_actors(m91, database_url=database_url, redis_url=redis_url, prefix="m91-")
    try:
        await actors.ping()
        router = ShardRouter(actors.shards, max_delay=0.003)
        app = create_app(m91, router, database_url=database_url)
        async with FakeServer(app) as server, httpx.AsyncClient(base_url=server.url) as http:
            router.start()
            phone = new_phone()
            sent = await http.post(
                "/api/webhooks/msg91",
                params={"secret": MSG91_SECRET},
                json=inbound(phone, "is my order shipped?"),
            )
            assert sent.status_code == 200

            async def answered() -> bool:
                return bool(fake.messages_to(phone))

            await eventually(answered, within=30)
            await asyncio.sleep(0.3)
            [reply] = fake.messages_to(phone)
            assert reply.text == "Echo: is my order shipped?"
            assert reply.integrated_number == INTEGRATED
            await router.stop()
    finally:
        actors.kill()


async def test_an_msg91_service_reports_msg91_and_records_it_on_its_replies(
    settings: Settings,
    ray_cluster: None,
    database_url: str,
    redis_url: str,
    db: asyncpg.Pool,
    msg91: tuple[Msg91Fake, str],
) -> None:
    fake, url = msg91
    m91 = msg91_settings(settings, url)
    assert m91.delivery_provider == "msg91"
    actors = start_actors(m91, database_url=database_url, redis_url=redis_url, prefix="m91p-")
    try:
        await actors.ping()
        router = ShardRouter(actors.shards, max_delay=0.003)
        app = create_app(m91, router, database_url=database_url)
        async with FakeServer(app) as server, httpx.AsyncClient(base_url=server.url) as http:
            router.start()
            health = (await http.get("/api/health")).json()
            assert health["checks"]["delivery_provider"]["detail"] == f"msg91, number {INTEGRATED}"
            phone = new_phone()
            sent = await http.post(
                "/api/webhooks/msg91", params={"secret": MSG91_SECRET}, json=inbound(phone, "hi")
            )
            assert sent.status_code == 200

            async def answered() -> bool:
                return bool(fake.messages_to(phone))

            await eventually(answered, within=30)
            await router.stop()
        provider = await db.fetchval(
            """SELECT m.provider FROM messages m JOIN conversations c ON c.id = m.conversation_id
               WHERE c.customer_phone = $1 AND m.direction = 'outbound'""",
            phone,
        )
        assert provider == "msg91"
    finally:
        actors.kill()
