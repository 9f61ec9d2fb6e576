"""Inbound updates that change an earlier message: reactions, edits and revokes.

Meta sends them as messages of their own that point at the original by its wamid
(https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components#messages-object).
"""

from __future__ import annotations

import asyncpg


async def set_reaction(
    conn: asyncpg.Connection, conversation_id: int, target_wamid: str, emoji: str | None
) -> bool:
    """Record the customer's reaction on the message it reacts to; an empty emoji removes it."""
    result = await conn.execute(
        """UPDATE messages SET reaction = NULLIF($3, ''), updated_at = now()
           WHERE provider_message_id = $2 AND conversation_id = $1""",
        conversation_id,
        target_wamid,
        emoji or "",
    )
    return _changed(result)


async def apply_edit(
    conn: asyncpg.Connection, conversation_id: int, target_wamid: str, new_text: str | None
) -> bool:
    result = await conn.execute(
        """UPDATE messages SET text = COALESCE($3, text), edited_at = now(), updated_at = now()
           WHERE provider_message_id = $2 AND conversation_id = $1 AND direction = 'inbound'""",
        conversation_id,
        target_wamid,
        new_text,
    )
    return _changed(result)


async def apply_revoke(conn: asyncpg.Connection, conversation_id: int, target_wamid: str) -> bool:
    """The customer deleted the message for everyone: keep the row, mark it deleted."""
    result = await conn.execute(
        """UPDATE messages SET deleted_at = now(), updated_at = now()
           WHERE provider_message_id = $2 AND conversation_id = $1 AND direction = 'inbound'""",
        conversation_id,
        target_wamid,
    )
    return _changed(result)


def _changed(status: str) -> bool:
    return str(status).endswith(" 1")
