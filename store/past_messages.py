"""Messages that already happened (`history`, `smb_message_echoes`): stored, never answered.

An inbound past message is written processed, so no shard, replay or sweep ever takes it;
an outbound one (the business wrote from the WhatsApp Business app) is written `sent`,
outside the send ledger, so nothing sends it. Neither moves the customer-service window
nor reopens a conversation: only a customer writing now does that.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import orjson

from store.records import PastMessage

_ENSURE_CONVERSATIONS = """
INSERT INTO conversations AS c (business_number, customer_phone)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (business_number, customer_phone) DO UPDATE SET updated_at = c.updated_at
RETURNING id, business_number, customer_phone
"""

_INSERT = """
INSERT INTO messages (conversation_id, direction, provider, provider_message_id, type, text,
                      payload, status, provider_timestamp, processed_at, created_at)
SELECT cid, dir, provider, wamid, type, text, payload::jsonb,
       CASE WHEN dir = 'inbound' THEN 'processed' ELSE 'sent' END, ts,
       CASE WHEN dir = 'inbound' THEN now() END, ts
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::timestamptz[]) AS t(cid, dir, provider, wamid, type, text, payload, ts)
ON CONFLICT (provider_message_id) DO NOTHING
"""


async def insert_past(conn: asyncpg.Connection, messages: Sequence[PastMessage]) -> None:
    if not messages:
        return
    keys = sorted({(m.business_number, m.customer_phone) for m in messages})
    rows = await conn.fetch(_ENSURE_CONVERSATIONS, [k[0] for k in keys], [k[1] for k in keys])
    ids = {(r["business_number"], r["customer_phone"]): r["id"] for r in rows}
    await conn.execute(
        _INSERT,
        [ids[(m.business_number, m.customer_phone)] for m in messages],
        [m.direction for m in messages],
        [m.provider for m in messages],
        [m.provider_message_id for m in messages],
        [m.type for m in messages],
        [m.text for m in messages],
        [orjson.dumps(m.payload).decode() for m in messages],
        [m.timestamp for m in messages],
    )
