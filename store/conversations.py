"""Conversation rows and the history a virtual conversation actor is rebuilt from."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import asyncpg

from config.vocabulary import ConversationState
from store.records import Turn


async def recent_turns(
    conn: asyncpg.Connection, conversation_id: int, limit: int, *, before_id: int
) -> list[Turn]:
    """The last `limit` text turns before an inbound message, oldest first, for an LLM.

    A reply is placed right after the message it answers, whatever its own id.
    """
    rows = await conn.fetch(
        """SELECT direction, text FROM (
               SELECT direction, text, COALESCE(reply_to_id, id) AS turn,
                      direction = 'outbound' AS is_reply
               FROM messages
               WHERE conversation_id = $1 AND text IS NOT NULL AND text <> ''
                 AND ((direction = 'inbound' AND id < $3)
                      OR (direction = 'outbound' AND reply_to_id < $3 AND status <> 'failed'))
               ORDER BY turn DESC, is_reply DESC LIMIT $2) recent
           ORDER BY turn, is_reply""",
        conversation_id,
        limit,
        before_id,
    )
    return [
        Turn(role="user" if r["direction"] == "inbound" else "assistant", text=r["text"])
        for r in rows
    ]


async def flag_for_human(conn: asyncpg.Connection, conversation_id: int, reason: str) -> None:
    """Hand the conversation to a person: the bot stops answering until an operator returns it."""
    await conn.execute(
        """UPDATE conversations SET state = 'human', needs_human = true, handoff_reason = $2,
                  handoff_at = now(), updated_at = now()
           WHERE id = $1 AND state <> 'closed'""",
        conversation_id,
        reason,
    )


async def return_to_bot(
    conn: asyncpg.Connection,
    conversation_id: int,
    *,
    from_states: Collection[ConversationState] = (ConversationState.HUMAN,),
) -> bool:
    """Give the conversation back to the bot, if it is in one of `from_states`.

    The hand-off is forgotten with it (reason and time), so a later hand-off's idle time
    counts from that hand-off, not from this one.
    """
    result = await conn.execute(
        """UPDATE conversations SET state = 'bot', needs_human = false, handoff_reason = NULL,
                  handoff_at = NULL, updated_at = now()
           WHERE id = $1 AND state = ANY($2::text[])""",
        conversation_id,
        [str(s) for s in from_states],
    )
    return bool(result.endswith(" 1"))


async def save_flow(
    conn: asyncpg.Connection,
    conversation_id: int,
    variables: dict[str, Any],
    flow_state: dict[str, Any] | None,
) -> None:
    await conn.execute(
        """UPDATE conversations SET variables = $2::jsonb, flow_state = $3::jsonb,
                  updated_at = now()
           WHERE id = $1""",
        conversation_id,
        variables,
        flow_state,
    )
