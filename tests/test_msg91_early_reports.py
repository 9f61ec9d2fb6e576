"""An MSG91 delivery report that overtakes the answer to our send is kept and applied."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from actors.delivery.ledger_send import LedgerSender
from actors.delivery.providers.msg91 import Msg91Provider
from actors.wire import Content, DeliveryRequest
from fakes.msg91 import Msg91Fake
from fakes.server import FakeServer
from gateway.msg91 import PATH as MSG91_PATH
from tests.conftest import MSG91_SECRET
from tests.security_fixtures import StartGateway, own_gateway  # noqa: F401
from tests.support import BUSINESS_NUMBER, eventually, new_phone, stored_reply

AUTH_KEY = "test-msg91-authkey"


@pytest_asyncio.fixture
async def msg91() -> AsyncIterator[tuple[Msg91Fake, str]]:
    fake = Msg91Fake(auth_key=AUTH_KEY)
    async with FakeServer(fake.app) as server:
        yield fake, server.url


async def _status(db: asyncpg.Pool, outbound_id: int) -> str:
    return str(await db.fetchval("SELECT status FROM messages WHERE id = $1", outbound_id))


async def test_a_delivery_report_before_the_send_is_recorded_is_applied_after(
    own_gateway: StartGateway,  # noqa: F811
    msg91: tuple[Msg91Fake, str],
    db: asyncpg.Pool,
) -> None:
    gateway = await own_gateway()
    fake, url = msg91
    fake.report_url = f"{gateway.http.base_url}{MSG91_PATH}"
    fake.report_secret = MSG91_SECRET
    fake.early_reports = ("delivered",)
    phone = new_phone()
    _, outbound_id = await stored_reply(db, phone, "where is my order?", "on its way")
    provider = Msg91Provider(base_url=url, auth_key=AUTH_KEY, integrated_number=BUSINESS_NUMBER)
    sender = LedgerSender(
        db,
        provider,
        None,
        _no_template,
        owner="early-report-test",
        call_seconds=10.0,
        unknown_wait_seconds=5.0,
    )
    try:
        result = await sender.deliver(
            DeliveryRequest(outbound_id, BUSINESS_NUMBER, phone, Content.plain("on its way"))
        )
    finally:
        await provider.close()
    assert result.ok
    [sent] = fake.sent

    async def delivered() -> bool:
        return await _status(db, outbound_id) == "delivered"

    # ...and applied once the send was recorded, not dropped.
    await eventually(delivered, within=5)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM held_statuses WHERE provider_message_id = $1",
            f"msg91:{sent.request_id}",
        )
    ) == 0


async def _no_template() -> None:
    return None
