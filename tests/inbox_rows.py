"""Inbox rows stored directly, as a webhook would have left them: unprocessed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from store import inbox
from store.records import InboundMessage, InboxItem
from tests.support import BUSINESS_NUMBER, new_wamid


async def store_inbound(
    db: asyncpg.Pool, rows: Sequence[tuple[str, str, str | None]]
) -> list[InboxItem]:
    """(phone, message type, text) rows, stored in the order given; their inbox items."""
    now = datetime.now(tz=UTC)
    messages = [
        InboundMessage(
            provider="whatsapp_cloud",
            provider_message_id=new_wamid(),
            business_number=BUSINESS_NUMBER,
            customer_phone=phone,
            type=kind,
            text=text,
            payload={"type": "text", "text": {"body": text}} if kind == "text" else {},
            timestamp=now,
        )
        for phone, kind, text in rows
    ]
    async with db.acquire() as conn:
        return await inbox.insert_inbound(conn, messages)


async def store_texts(db: asyncpg.Pool, phone: str, *texts: str) -> list[InboxItem]:
    """Customer texts of one phone, unprocessed and routed nowhere, in this order."""
    return await store_inbound(db, [(phone, "text", text) for text in texts])
