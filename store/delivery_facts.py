"""What the delivery actor reports about a reply once it is handed to the provider."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class ReplyFacts:
    conversation_id: int
    # Seconds from storing the customer's message to now; None for an operator's reply.
    since_inbound_seconds: float | None


async def reply_facts(conn: asyncpg.Connection, outbound_id: int) -> ReplyFacts | None:
    # now() of the database on both sides: no clock skew between nodes.
    r = await conn.fetchrow(
        """SELECT o.conversation_id, extract(epoch FROM now() - i.created_at) AS since_inbound
           FROM messages o LEFT JOIN messages i ON i.id = o.reply_to_id
           WHERE o.id = $1""",
        outbound_id,
    )
    if r is None:
        return None
    since = r["since_inbound"]
    return ReplyFacts(
        conversation_id=r["conversation_id"],
        since_inbound_seconds=float(since) if since is not None else None,
    )


async def reply_facts_many(
    conn: asyncpg.Connection, outbound_ids: Sequence[int]
) -> dict[int, ReplyFacts]:
    """`reply_facts` of many replies in one statement; a missing reply is absent."""
    rows = await conn.fetch(
        """SELECT o.id, o.conversation_id,
                  extract(epoch FROM now() - i.created_at) AS since_inbound
           FROM messages o LEFT JOIN messages i ON i.id = o.reply_to_id
           WHERE o.id = ANY($1::bigint[])""",
        list(set(outbound_ids)),
    )
    return {
        r["id"]: ReplyFacts(
            conversation_id=r["conversation_id"],
            since_inbound_seconds=(
                float(r["since_inbound"]) if r["since_inbound"] is not None else None
            ),
        )
        for r in rows
    }
