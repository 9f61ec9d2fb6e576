"""Builders of our own WhatsApp webhook fixtures, and helpers to send and wait."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from config.vocabulary import ProviderName
from gateway.app import WEBHOOK_PATH
from gateway.signature import HEADER, sign
from store import inbox, outbound
from store.records import InboundMessage, InboxItem

BUSINESS_NUMBER = "100200300400"
DISPLAY_NUMBER = "15550009999"
_counter = itertools.count(1)


def new_phone() -> str:
    """A fresh customer number per test, so tests never see each other's conversations."""
    return "49" + "".join(random.choices("0123456789", k=10))


def new_wamid() -> str:
    return f"wamid.TEST{random.getrandbits(64):016x}{next(_counter)}"


def message(
    phone: str, kind: str = "text", *, wamid: str | None = None, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": phone,
        "id": wamid or new_wamid(),
        "timestamp": str(int(time.time())),
        "type": kind,
    }
    body.update(fields)
    return body


def text_message(phone: str, text: str, *, wamid: str | None = None) -> dict[str, Any]:
    return message(phone, "text", wamid=wamid, text={"body": text})


def envelope(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    *,
    name: str = "Test Customer",
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": BUSINESS_NUMBER},
    }
    if messages:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": messages[0]["from"]}]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "880000000000", "changes": [{"field": "messages", "value": value}]}],
    }


class WebhookClient:
    """Posts signed webhooks to a running gateway, as Meta would."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url
        self.secret = secret
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def post(self, payload: dict[str, Any] | bytes, **kwargs: Any) -> httpx.Response:
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(raw, self.secret),
        }
        headers.update(kwargs.pop("headers", {}))
        return await self.http.post(WEBHOOK_PATH, content=raw, headers=headers, **kwargs)

    async def close(self) -> None:
        await self.http.aclose()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 20.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


async def stored_reply(
    db: asyncpg.Pool, phone: str, asked: str, reply: str
) -> tuple[InboxItem, int]:
    """A customer's message stored with its reply reserved and not yet sent: the state a
    crash leaves between the reservation and the send. Returns the item and the reply id."""
    message = InboundMessage(
        provider=ProviderName.WHATSAPP_CLOUD,
        provider_message_id=new_wamid(),
        business_number=BUSINESS_NUMBER,
        customer_phone=phone,
        type="text",
        text=asked,
        payload={},
        timestamp=datetime.now(tz=UTC),
    )
    async with db.acquire() as conn:
        [item] = await inbox.insert_inbound(conn, [message])
        row = await outbound.reserve_reply(
            conn,
            outbound.NewReply(
                item.conversation_id, item.message_id, reply, provider=ProviderName.WHATSAPP_CLOUD
            ),
        )
    return item, row.id
