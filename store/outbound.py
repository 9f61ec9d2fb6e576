"""Outbound replies and their delivery statuses.

A reply row is unique per inbound message (`reply_to_id`), and it is written before
the send, so a replayed message finds its reply instead of making a second one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from config.vocabulary import MessageType, ProviderName
from store import held_statuses, send_ledger
from store.records import OutboundRow, StatusUpdate

# Meta's statuses arrive out of order (DESIGN.md §6); the current status only moves forward.
STATUS_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}


# The WhatsApp message type of each content kind.
_TYPES = {
    "text": MessageType.TEXT,
    "buttons": MessageType.INTERACTIVE,
    "list": MessageType.INTERACTIVE,
    "template": MessageType.TEMPLATE,
}


def _rank(status: str) -> int:
    return STATUS_RANK.get(status, -1)


_COLUMNS = "id, conversation_id, reply_to_id, text, status, provider_message_id, payload"


@dataclass(frozen=True, slots=True)
class NewReply:
    conversation_id: int
    reply_to_id: int
    text: str
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    attempts: int | None = None
    latency_ms: float | None = None
    content: dict[str, Any] | None = None  # buttons, list or template; None for plain text
    # Who sends it (Settings.delivery_provider): named by every caller, never assumed.
    provider: ProviderName = field(kw_only=True)


def _row(r: asyncpg.Record) -> OutboundRow:
    return OutboundRow(
        id=r["id"],
        conversation_id=r["conversation_id"],
        reply_to_id=r["reply_to_id"],
        text=r["text"],
        status=r["status"],
        provider_message_id=r["provider_message_id"],
        content=content_of(r["payload"]),
    )


def content_of(payload: object) -> dict[str, Any] | None:
    if isinstance(payload, str):
        payload = orjson.loads(payload)
    return payload if isinstance(payload, dict) and payload.get("kind") else None


async def reply_for(conn: asyncpg.Connection, inbound_id: int) -> OutboundRow | None:
    r = await conn.fetchrow(f"SELECT {_COLUMNS} FROM messages WHERE reply_to_id = $1", inbound_id)
    return _row(r) if r is not None else None


async def reserve_reply(conn: asyncpg.Connection, reply: NewReply) -> OutboundRow:
    """Store the reply as pending, or return the reply already stored for that message."""
    r = await conn.fetchrow(
        f"""INSERT INTO messages (conversation_id, direction, provider, type, text, status,
                                  reply_to_id, model, prompt_tokens, completion_tokens, llm_cost,
                                  llm_attempts, llm_latency_ms, payload)
            VALUES ($1, 'outbound', $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11,
                    $12::jsonb)
            ON CONFLICT (reply_to_id) DO NOTHING
            RETURNING {_COLUMNS}""",
        reply.conversation_id,
        reply.provider,
        _TYPES.get((reply.content or {}).get("kind", "text"), MessageType.TEXT),
        reply.text,
        reply.reply_to_id,
        reply.model,
        reply.prompt_tokens,
        reply.completion_tokens,
        reply.cost,
        reply.attempts,
        reply.latency_ms,
        reply.content or {},
    )
    if r is not None:
        return _row(r)
    existing = await reply_for(conn, reply.reply_to_id)
    assert existing is not None, "a conflicting reply row must exist"
    return existing


@dataclass(frozen=True, slots=True)
class SendFacts:
    """What the delivery actor needs of a reply before its parts exist."""

    status: str
    provider_message_id: str | None
    last_customer_message_at: datetime | None  # the 24-hour window


async def send_facts(conn: asyncpg.Connection, outbound_id: int) -> SendFacts | None:
    r = await conn.fetchrow(
        """SELECT m.status, m.provider_message_id, c.last_customer_message_at
           FROM messages m JOIN conversations c ON c.id = m.conversation_id
           WHERE m.id = $1""",
        outbound_id,
    )
    if r is None:
        return None
    return SendFacts(r["status"], r["provider_message_id"], r["last_customer_message_at"])


@dataclass(frozen=True, slots=True)
class SendStart:
    """What a send of a reply starts from: its parts if made, else its send facts."""

    parts: list[send_ledger.Part]
    facts: SendFacts


async def send_starts(
    conn: asyncpg.Connection, outbound_ids: Sequence[int]
) -> dict[int, SendStart]:
    """`send_ledger.parts_of` and `send_facts` of many replies in one statement; a reply
    with no messages row is absent."""
    rows = await conn.fetch(
        f"""SELECT q.id AS reply_id, m.status AS reply_status,
                   m.provider_message_id AS reply_wamid, c.last_customer_message_at,
                   {send_ledger.columns_of("p")}
            FROM unnest($1::bigint[]) AS q(id)
            JOIN messages m ON m.id = q.id
            JOIN conversations c ON c.id = m.conversation_id
            LEFT JOIN send_parts p ON p.message_id = m.id
            ORDER BY q.id, p.part""",
        list(set(outbound_ids)),
    )
    starts: dict[int, SendStart] = {}
    for r in rows:
        start = starts.get(r["reply_id"])
        if start is None:
            facts = SendFacts(r["reply_status"], r["reply_wamid"], r["last_customer_message_at"])
            start = starts[r["reply_id"]] = SendStart([], facts)
        if r["id"] is not None:
            start.parts.append(send_ledger.part_from(r))
    return starts


async def record_template(
    conn: asyncpg.Connection, outbound_id: int, payload: dict[str, Any], text: str
) -> None:
    """The 24-hour window was closed: this reply goes out as the template instead.

    The row's text becomes the template's label, so the dashboard and the API show what
    the customer actually received.
    """
    await conn.execute(
        """UPDATE messages SET type = 'template', payload = $2::jsonb, text = $3,
                  updated_at = now()
           WHERE id = $1""",
        outbound_id,
        payload,
        text,
    )


async def mark_failed(
    conn: asyncpg.Connection, outbound_id: int, error_code: int | None, error_title: str
) -> None:
    """Nothing of this reply may go out (the window is closed and no template is set)."""
    await conn.execute(
        """UPDATE messages SET status = 'failed', error_code = $2, error_title = $3,
                  updated_at = now()
           WHERE id = $1 AND status IN ('pending', 'sending')""",
        outbound_id,
        error_code,
        error_title[:500],
    )


async def apply_statuses(conn: asyncpg.Connection, statuses: Sequence[StatusUpdate]) -> int:
    """Move outbound rows forward by status webhooks; return how many rows changed."""
    # An UPDATE joined to two statuses of one row applies an arbitrary one of them
    # (PostgreSQL's UPDATE ... FROM), so keep only the furthest status per message.
    furthest: dict[str, StatusUpdate] = {}
    for s in statuses:
        held = furthest.get(s.provider_message_id)
        if held is None or _rank(s.status) > _rank(held.status):
            furthest[s.provider_message_id] = s
    statuses = list(furthest.values())
    if not statuses:
        return 0
    await _claim_unknown_sends(conn, statuses)
    # Before the UPDATE: a report for a send not recorded yet is kept for later, not lost.
    await held_statuses.hold_unknown(conn, statuses)
    result = await conn.execute(
        """UPDATE messages m SET status = s.status, error_code = COALESCE(s.code, m.error_code),
                  error_title = COALESCE(s.title, m.error_title), updated_at = now()
           FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::int[])
                AS s(wamid, status, code, title, rank)
           WHERE m.provider_message_id = s.wamid AND m.direction = 'outbound'
             AND s.rank > CASE m.status WHEN 'pending' THEN 0 WHEN 'sending' THEN 1
                                        WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3
                                        WHEN 'read' THEN 4 WHEN 'failed' THEN 5 ELSE -1 END""",
        [s.provider_message_id for s in statuses],
        [s.status for s in statuses],
        [s.error_code for s in statuses],
        [s.error_title for s in statuses],
        [_rank(s.status) for s in statuses],
    )
    return int(result.split()[-1])


async def _claim_unknown_sends(conn: asyncpg.Connection, statuses: Sequence[StatusUpdate]) -> None:
    """A status echoing our callback data names the wamid of a send whose answer we lost.

    A crash, a timeout or a lapsed lease after Meta accepted a part leaves it `claimed` or
    `unknown` with no id; the status webhook fills it in, and the part is known to be sent,
    so nobody sends it again (DESIGN.md §3). Callback data is `<message id>.<part>`; a
    plain number is a messages.id from before the ledger, for rows in flight at the upgrade.
    """
    parts: list[tuple[int, int, str]] = []
    legacy: list[tuple[int, str]] = []
    for s in statuses:
        named = send_ledger.part_of(s.callback_data)
        if named is not None:
            parts.append((*named, s.provider_message_id))
        elif s.callback_data is not None and send_ledger.is_bigint_text(s.callback_data):
            legacy.append((int(s.callback_data), s.provider_message_id))
    changed = await send_ledger.resolve_by_callback(conn, parts)
    if legacy:
        rows = await conn.fetch(
            """UPDATE messages m SET provider_message_id = c.wamid,
                      status = CASE WHEN m.status IN ('pending', 'sending') THEN 'sent'
                                    ELSE m.status END,
                      updated_at = now()
               FROM unnest($1::bigint[], $2::text[]) AS c(id, wamid)
               WHERE m.id = c.id AND m.direction = 'outbound' AND m.provider_message_id IS NULL
                 AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.provider_message_id = c.wamid)
               RETURNING m.id""",
            [c[0] for c in legacy],
            [c[1] for c in legacy],
        )
        await send_ledger.resolve_legacy(conn, [r["id"] for r in rows])
    if changed:
        await send_ledger.sync_messages(conn, changed)


async def apply_held(conn: asyncpg.Connection, provider_message_ids: Sequence[str]) -> int:
    """The send of these ids is recorded: apply the reports that came before it."""
    if not held_statuses.held_kind(provider_message_ids):
        return 0  # a Cloud API wamid: nothing is ever held for it
    async with conn.transaction():
        early = await held_statuses.take(conn, provider_message_ids)
        return await apply_statuses(conn, early) if early else 0


async def apply_held_recorded(conn: asyncpg.Connection, limit: int) -> int:
    """The sweep's safety net: held reports whose send got recorded; return how many."""
    async with conn.transaction():
        early = await held_statuses.take_recorded(conn, limit)
        if early:
            await apply_statuses(conn, early)
    return len(early)


_RESERVE_MANY = f"""
INSERT INTO messages (conversation_id, direction, provider, type, text, status, reply_to_id,
                      model, prompt_tokens, completion_tokens, llm_cost, llm_attempts,
                      llm_latency_ms, payload)
SELECT conversation_id, 'outbound', provider, type, text, 'pending', reply_to_id, model,
       prompt_tokens, completion_tokens, llm_cost, llm_attempts, llm_latency_ms, payload::jsonb
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
            $7::int[], $8::int[], $9::numeric[], $10::int[], $11::real[], $12::text[])
     WITH ORDINALITY AS r(conversation_id, provider, type, text, reply_to_id, model,
                          prompt_tokens, completion_tokens, llm_cost, llm_attempts,
                          llm_latency_ms, payload, n)
ORDER BY n
ON CONFLICT (reply_to_id) DO NOTHING
RETURNING {_COLUMNS}
"""


async def reserve_replies(
    conn: asyncpg.Connection, replies: Sequence[NewReply]
) -> dict[int, OutboundRow]:
    """`reserve_reply` for many inbound messages: one INSERT, by inbound message id.

    A message that already has a reply gets the stored one (one more read, for those only).
    """
    if not replies:
        return {}
    rows = await conn.fetch(
        _RESERVE_MANY,
        [r.conversation_id for r in replies],
        [r.provider for r in replies],
        [_TYPES.get((r.content or {}).get("kind", "text"), MessageType.TEXT) for r in replies],
        [r.text for r in replies],
        [r.reply_to_id for r in replies],
        [r.model for r in replies],
        [r.prompt_tokens for r in replies],
        [r.completion_tokens for r in replies],
        [r.cost for r in replies],
        [r.attempts for r in replies],
        [r.latency_ms for r in replies],
        [orjson.dumps(r.content or {}).decode() for r in replies],
    )
    reserved = {r["reply_to_id"]: _row(r) for r in rows}
    conflicts = [r.reply_to_id for r in replies if r.reply_to_id not in reserved]
    if conflicts:
        existing = await conn.fetch(
            f"SELECT {_COLUMNS} FROM messages WHERE reply_to_id = ANY($1::bigint[])", conflicts
        )
        reserved.update((r["reply_to_id"], _row(r)) for r in existing)
    return reserved
