"""The inbox: inbound messages stored before the webhook is acknowledged.

An inbound row whose `processed_at` is NULL is unprocessed (a dead letter is processed,
with status `dead`). Inserts are idempotent on
the provider's message id (Meta retries webhooks for days, DESIGN.md §6), and a batch
of messages from many webhook requests goes in with one statement per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from store.outbound import content_of
from store.records import InboundMessage, InboxItem, OutboundRow

_UPSERT_CONVERSATIONS = """
INSERT INTO conversations AS c (business_number, customer_phone, customer_name,
                                last_customer_message_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
ON CONFLICT (business_number, customer_phone) DO UPDATE SET
    customer_name = COALESCE(EXCLUDED.customer_name, c.customer_name),
    last_customer_message_at = GREATEST(c.last_customer_message_at,
                                        EXCLUDED.last_customer_message_at),
    -- A customer writing again reopens a closed conversation, as a support desk expects.
    state = CASE WHEN c.state = 'closed' THEN 'bot' ELSE c.state END,
    updated_at = now()
RETURNING id, business_number, customer_phone
"""

_INSERT_MESSAGES = """
INSERT INTO messages (conversation_id, direction, provider, provider_message_id, type, text,
                      payload, status, provider_timestamp, request_id)
SELECT conversation_id, 'inbound', provider, provider_message_id, type, text,
       payload::jsonb, 'received', ts, request_id
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::timestamptz[], $8::text[])
     WITH ORDINALITY AS t(conversation_id, provider, provider_message_id, type, text, payload,
                          ts, request_id, n)
ORDER BY n
ON CONFLICT (provider_message_id) DO NOTHING
RETURNING id, conversation_id, provider_message_id
"""

_ITEM_COLUMNS = """m.id, m.conversation_id, c.business_number, c.customer_phone, m.type, m.text,
       m.provider_message_id, m.provider, m.payload, m.request_id"""

_UNPROCESSED = f"""
SELECT {_ITEM_COLUMNS}
FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.direction = 'inbound' AND m.processed_at IS NULL
  AND m.created_at <= now() - make_interval(secs => $1)
  AND m.id > $2
ORDER BY m.id
LIMIT $3
"""

# The order gate (DESIGN.md §3): a message waits while an earlier inbound message of its
# conversation is open, i.e. neither processed nor dead, whichever path brought either.
_BLOCKED_BY = """(SELECT min(e.id) FROM messages e
                   WHERE e.conversation_id = m.conversation_id AND e.direction = 'inbound'
                     AND e.processed_at IS NULL AND e.status <> 'dead' AND e.id < m.id)"""

_OPEN_BEFORE = f"""
SELECT {_ITEM_COLUMNS}
FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.direction = 'inbound' AND m.processed_at IS NULL AND m.status <> 'dead'
  AND m.conversation_id = (SELECT conversation_id FROM messages WHERE id = $1) AND m.id < $1
ORDER BY m.id
LIMIT $2
"""


def without_nul(value: Any) -> Any:
    """Drop NUL characters, which Postgres cannot store in text or JSONB.

    A customer can send one; refusing the row would answer Meta 503 on every retry, for days.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


async def insert_inbound(
    conn: asyncpg.Connection, messages: Sequence[InboundMessage]
) -> list[InboxItem]:
    """Store messages; return only the ones that were new, in the order given."""
    if not messages:
        return []
    latest: dict[tuple[str, str], InboundMessage] = {}
    for m in messages:
        key = (m.business_number, m.customer_phone)
        if key not in latest or m.timestamp > latest[key].timestamp:
            latest[key] = m
    # Sorted keys: concurrent transactions lock conversation rows in one order, never deadlock.
    keys = sorted(latest)
    rows = await conn.fetch(
        _UPSERT_CONVERSATIONS,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [without_nul(latest[k].customer_name) for k in keys],
        [latest[k].timestamp for k in keys],
    )
    conversation_ids = {(r["business_number"], r["customer_phone"]): r["id"] for r in rows}
    inserted = await conn.fetch(
        _INSERT_MESSAGES,
        [conversation_ids[(m.business_number, m.customer_phone)] for m in messages],
        [m.provider for m in messages],
        [m.provider_message_id for m in messages],
        [m.type for m in messages],
        [without_nul(m.text) for m in messages],
        [orjson.dumps(without_nul(m.payload)).decode() for m in messages],
        [m.timestamp for m in messages],
        [m.request_id for m in messages],
    )
    new_ids = {r["provider_message_id"]: r["id"] for r in inserted}
    items: list[InboxItem] = []
    for m in messages:
        message_id = new_ids.pop(m.provider_message_id, None)
        if message_id is None:
            continue
        items.append(
            InboxItem(
                message_id=message_id,
                conversation_id=conversation_ids[(m.business_number, m.customer_phone)],
                business_number=m.business_number,
                customer_phone=m.customer_phone,
                type=m.type,
                text=m.text,
                provider_message_id=m.provider_message_id,
                provider=m.provider,
                payload=m.payload,
                request_id=m.request_id,
            )
        )
    items.sort(key=lambda i: i.message_id)
    return items


async def unprocessed(
    conn: asyncpg.Connection,
    *,
    older_than_seconds: float = 0.0,
    after_id: int = 0,
    limit: int = 1000,
) -> list[InboxItem]:
    return _items(await conn.fetch(_UNPROCESSED, older_than_seconds, after_id, limit))


async def open_before(
    conn: asyncpg.Connection, message_id: int, *, limit: int = 100
) -> list[InboxItem]:
    """The open inbound messages of this message's conversation that come before it."""
    return _items(await conn.fetch(_OPEN_BEFORE, message_id, limit))


async def item(conn: asyncpg.Connection, message_id: int) -> InboxItem | None:
    """One inbound message as the shards take it (an operator's retry routes it again)."""
    rows = await conn.fetch(
        f"""SELECT {_ITEM_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id
            WHERE m.id = $1 AND m.direction = 'inbound'""",
        message_id,
    )
    found = _items(rows)
    return found[0] if found else None


def _items(rows: Sequence[asyncpg.Record]) -> list[InboxItem]:
    return [
        InboxItem(
            message_id=r["id"],
            conversation_id=r["conversation_id"],
            business_number=r["business_number"],
            customer_phone=r["customer_phone"],
            type=r["type"],
            text=r["text"],
            provider_message_id=r["provider_message_id"],
            provider=r["provider"],
            payload=_as_dict(r["payload"]),
            request_id=r["request_id"],
        )
        for r in rows
    ]


def _as_dict(value: object) -> dict[str, Any]:
    # Without the pool's JSONB codec (a bare connection) the value arrives as text.
    if isinstance(value, str):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


async def mark_processed(conn: asyncpg.Connection, message_ids: Sequence[int]) -> None:
    await conn.execute(
        """UPDATE messages SET processed_at = now(), status = 'processed', updated_at = now()
           WHERE id = ANY($1::bigint[]) AND processed_at IS NULL""",
        list(message_ids),
    )


@dataclass(frozen=True, slots=True)
class WorkState:
    """What a shard needs to know before handling a message: done already? any reply yet?"""

    processed: bool
    conversation_state: str
    reply: OutboundRow | None
    # Seconds since the conversation was handed to a person, or since an operator last
    # wrote in it, whichever is later; None unless it is with a person.
    human_idle_seconds: float | None = None
    # The conversation's first inbound message (a "first message" flow trigger).
    first_message: bool = False
    variables: dict[str, Any] | None = None
    flow_state: dict[str, Any] | None = None
    # The earliest earlier open message of the conversation: this one must wait for it.
    blocked_by: int | None = None


async def work_state(conn: asyncpg.Connection, message_id: int) -> WorkState | None:
    return (await work_states(conn, [message_id])).get(message_id)


async def work_states(conn: asyncpg.Connection, message_ids: Sequence[int]) -> dict[int, WorkState]:
    """The work state of each message that exists, by id: one statement for a batch."""
    rows = await conn.fetch(
        f"""SELECT m.id, m.processed_at IS NOT NULL AS processed, c.state,
                  o.id AS o_id, o.text AS o_text, o.status AS o_status,
                  o.provider_message_id AS o_wamid, o.payload AS o_payload,
                  c.variables, c.flow_state,
                  NOT EXISTS (SELECT 1 FROM messages e
                              WHERE e.conversation_id = m.conversation_id
                                AND e.direction = 'inbound' AND e.id < m.id) AS first_message,
                  {_BLOCKED_BY} AS blocked_by,
                  CASE WHEN c.state = 'human' THEN extract(epoch FROM now() - GREATEST(
                      c.handoff_at,
                      (SELECT max(a.created_at) FROM messages a
                       WHERE a.conversation_id = c.id AND a.direction = 'outbound'
                         AND a.reply_to_id IS NULL)))
                  END AS human_idle
           FROM messages m
           JOIN conversations c ON c.id = m.conversation_id
           LEFT JOIN messages o ON o.reply_to_id = m.id
           WHERE m.id = ANY($1::bigint[])""",
        list(message_ids),
    )
    return {r["id"]: _work_state(r) for r in rows}


def _work_state(r: asyncpg.Record) -> WorkState:
    reply = None
    if r["o_id"] is not None:
        reply = OutboundRow(
            id=r["o_id"],
            conversation_id=0,
            reply_to_id=r["id"],
            text=r["o_text"],
            status=r["o_status"],
            provider_message_id=r["o_wamid"],
            content=content_of(r["o_payload"]),
        )
    idle = r["human_idle"]
    return WorkState(
        processed=r["processed"],
        conversation_state=r["state"],
        reply=reply,
        human_idle_seconds=float(idle) if idle is not None else None,
        first_message=r["first_message"],
        variables=_as_dict(r["variables"]),
        flow_state=_as_dict(r["flow_state"]) or None,
        blocked_by=r["blocked_by"],
    )


async def lock_conversation(conn: asyncpg.Connection, conversation_id: int) -> None:
    """Hold the conversation until this transaction ends: one turn commits at a time.

    Every shard and gateway takes the same lock, so two of them never commit turns of one
    conversation at once, whatever path brought the messages.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, ($2::bigint % 2147483647)::int)",
        _TURN_LOCK_SPACE,
        conversation_id,
    )


# The first key of the two-key advisory lock: its own space, apart from migrate's.
_TURN_LOCK_SPACE = 21
# The second key: the conversation id folded into an int, as lock_conversation's SQL does.
_LOCK_KEY_MODULUS = 2147483647

# The subquery's ORDER BY cannot be pulled up into the outer query, so the locks are taken
# row by row in ascending key order (tests/test_batched_commit.py watches pg_locks for it).
_LOCK_ASCENDING = """
SELECT pg_advisory_xact_lock($1, k)
FROM (SELECT DISTINCT k FROM unnest($2::int[]) AS k ORDER BY k) AS keys
"""


async def lock_conversations(conn: asyncpg.Connection, conversation_ids: Sequence[int]) -> None:
    """`lock_conversation` for many conversations in one statement, in ascending key order.

    Every taker of more than one of these locks takes them in that one order, and every
    other taker takes a single one as its transaction's first statement, so two takers
    never wait for each other in a cycle.
    """
    keys = sorted({cid % _LOCK_KEY_MODULUS for cid in conversation_ids})
    if keys:
        await conn.execute(_LOCK_ASCENDING, _TURN_LOCK_SPACE, keys)


async def begin_attempt(conn: asyncpg.Connection, message_id: int) -> int:
    """Count one more try of an open message (durably: restarts and sweeps count too)."""
    return (await begin_attempts(conn, [message_id])).get(message_id, 0)


async def begin_attempts(conn: asyncpg.Connection, message_ids: Sequence[int]) -> dict[int, int]:
    """`begin_attempt` for a batch: the tries so far of each open message, by id."""
    rows = await conn.fetch(
        """UPDATE messages SET attempts = attempts + 1, updated_at = now()
           WHERE id = ANY($1::bigint[]) AND processed_at IS NULL RETURNING id, attempts""",
        list(message_ids),
    )
    return {r["id"]: int(r["attempts"]) for r in rows}


async def record_failure(conn: asyncpg.Connection, message_id: int, error: str) -> tuple[int, str]:
    """Keep a try's error; return the tries so far and the error kept."""
    r = await conn.fetchrow(
        """UPDATE messages SET last_error = $2, updated_at = now()
           WHERE id = $1 RETURNING attempts, last_error""",
        message_id,
        error[:1000],
    )
    return (int(r["attempts"]), str(r["last_error"])) if r is not None else (0, error)


async def last_error(conn: asyncpg.Connection, message_id: int) -> str | None:
    value = await conn.fetchval("SELECT last_error FROM messages WHERE id = $1", message_id)
    return str(value) if value is not None else None
