"""What operators change: state (hand-off, return to the bot, close), assignment, labels,
and the outbound rows of their own replies.

The shard reads `conversations.state` before answering each message, so a state change
takes effect from the next customer message on, with no message to the actors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from config.vocabulary import SERVICE_WINDOW, ConversationState
from store import conversations


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where an operator's reply goes, and whether WhatsApp still allows free-form text."""

    conversation_id: int
    business_number: str
    customer_phone: str
    last_customer_message_at: datetime | None
    within_window: bool


async def hand_to_human(
    conn: asyncpg.Connection, conversation_id: int, *, reason: str, assign_to: int | None
) -> bool:
    """State human; the operator taking over is assigned unless someone already is."""
    result = await conn.execute(
        """UPDATE conversations SET state = 'human', needs_human = false, handoff_reason = $2,
                  assigned_user_id = COALESCE(assigned_user_id, $3), updated_at = now()
           WHERE id = $1""",
        conversation_id,
        reason,
        assign_to,
    )
    return bool(result.endswith(" 1"))


async def return_to_bot(conn: asyncpg.Connection, conversation_id: int) -> bool:
    """An operator hands back from any state (a closed one too); False: no such conversation."""
    return await conversations.return_to_bot(
        conn, conversation_id, from_states=tuple(ConversationState)
    )


async def close(conn: asyncpg.Connection, conversation_id: int) -> bool:
    result = await conn.execute(
        """UPDATE conversations SET state = 'closed', needs_human = false, updated_at = now()
           WHERE id = $1""",
        conversation_id,
    )
    return bool(result.endswith(" 1"))


async def assign(conn: asyncpg.Connection, conversation_id: int, user_id: int | None) -> bool:
    result = await conn.execute(
        "UPDATE conversations SET assigned_user_id = $2, updated_at = now() WHERE id = $1",
        conversation_id,
        user_id,
    )
    return bool(result.endswith(" 1"))


async def add_label(conn: asyncpg.Connection, conversation_id: int, label: str) -> bool:
    result = await conn.execute(
        """UPDATE conversations SET updated_at = now(),
                  labels = CASE WHEN $2 = ANY(labels) THEN labels ELSE labels || $2::text END
           WHERE id = $1""",
        conversation_id,
        label,
    )
    return bool(result.endswith(" 1"))


async def remove_label(conn: asyncpg.Connection, conversation_id: int, label: str) -> bool:
    result = await conn.execute(
        """UPDATE conversations SET labels = array_remove(labels, $2::text), updated_at = now()
           WHERE id = $1""",
        conversation_id,
        label,
    )
    return bool(result.endswith(" 1"))


async def reply_target(conn: asyncpg.Connection, conversation_id: int) -> ReplyTarget | None:
    r = await conn.fetchrow(
        """SELECT c.id, c.business_number, c.customer_phone, c.last_customer_message_at,
                  c.last_customer_message_at > now() - make_interval(secs => $2) AS within
           FROM conversations c WHERE c.id = $1""",
        conversation_id,
        SERVICE_WINDOW.total_seconds(),
    )
    if r is None:
        return None
    return ReplyTarget(
        conversation_id=r["id"],
        business_number=r["business_number"],
        customer_phone=r["customer_phone"],
        last_customer_message_at=r["last_customer_message_at"],
        within_window=bool(r["within"]),
    )


async def insert_agent_reply(
    conn: asyncpg.Connection, target: ReplyTarget, text: str, user_id: int, *, provider: str
) -> int:
    """Store an operator's reply as pending (no reply_to_id: it answers no one message).

    `provider` is the one configured to send it, whichever carried the customer's message.
    """
    message_id: int = await conn.fetchval(
        """INSERT INTO messages (conversation_id, direction, provider, type, text, status,
                                 sent_by_user_id)
           VALUES ($1, 'outbound', $2, 'text', $3, 'pending', $4) RETURNING id""",
        target.conversation_id,
        provider,
        text,
        user_id,
    )
    await conn.execute(
        "UPDATE conversations SET updated_at = now() WHERE id = $1", target.conversation_id
    )
    return message_id
