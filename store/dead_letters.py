"""Dead letters: inbound messages that failed every try, kept with their last error.

A dead message is processed (so no replay or sweep routes it again) with status `dead`.
The order gate lets later messages of its conversation go ahead. Only an operator brings
it back, through `retry`, which resets its tries.
"""

from __future__ import annotations

import asyncpg

from config.vocabulary import MessageType, ProviderName
from store.records import OutboundRow

HOLDING_REPLY = (
    "Sorry, we could not handle your last message automatically. "
    "A member of our team will look at it and answer you here."
)


async def bury(conn: asyncpg.Connection, message_id: int, error: str) -> bool:
    """Mark an open message dead; False if it was done meanwhile or a reply is reserved.

    A reserved reply means its turn finished (the LLM was paid for): it is sent, not buried.
    """
    result = await conn.execute(
        """UPDATE messages m SET status = 'dead', processed_at = now(), last_error = $2,
                  updated_at = now()
           WHERE m.id = $1 AND m.processed_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.reply_to_id = m.id)""",
        message_id,
        error[:1000],
    )
    return str(result).endswith(" 1")


async def insert_holding_reply(
    conn: asyncpg.Connection, conversation_id: int, provider: ProviderName
) -> OutboundRow:
    """The one polite reply for a dead message, pending.

    It answers no message (no reply_to_id), so an operator's retry of the dead message
    can still reserve that message's real reply.
    """
    r = await conn.fetchrow(
        """INSERT INTO messages (conversation_id, direction, provider, type, text, status)
           VALUES ($1, 'outbound', $2, $3, $4, 'pending')
           RETURNING id, conversation_id, text, status""",
        conversation_id,
        provider,
        MessageType.TEXT,
        HOLDING_REPLY,
    )
    return OutboundRow(
        id=r["id"],
        conversation_id=r["conversation_id"],
        reply_to_id=None,
        text=r["text"],
        status=r["status"],
        provider_message_id=None,
        content=None,
    )


async def retry(conn: asyncpg.Connection, conversation_id: int, message_id: int) -> bool:
    """An operator's retry: the dead message is open again, with its tries reset."""
    result = await conn.execute(
        """UPDATE messages SET status = 'received', processed_at = NULL, attempts = 0,
                  updated_at = now()
           WHERE id = $1 AND conversation_id = $2 AND direction = 'inbound'
             AND status = 'dead'""",
        message_id,
        conversation_id,
    )
    return str(result).endswith(" 1")


async def status_of(conn: asyncpg.Connection, conversation_id: int, message_id: int) -> str | None:
    """The status of an inbound message of this conversation; None if there is none."""
    value = await conn.fetchval(
        """SELECT status FROM messages
           WHERE id = $1 AND conversation_id = $2 AND direction = 'inbound'""",
        message_id,
        conversation_id,
    )
    return str(value) if value is not None else None


async def count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'dead'"))
