"""A turn as data: what the planner decided, committed in one transaction.

The planner (actors.conversation.turn) only reads and decides; the LLM is asked before
any transaction opens. `commit_turn` then writes every effect of the turn (changes to
earlier messages, the bot taking the conversation back, the flow step, the hand-off)
together with the reply's reservation, or with the message marked processed when there
is no reply, under the conversation's advisory lock (DESIGN.md §3, atomic turns). A crash
leaves either the whole turn or none of it, and a retry plans it again from scratch.

A shard commits the turns of its conversations finishing together in one transaction
(actors.conversation.batched_commit); `commit_turn` is the turn alone, which that falls
back to.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from actors.outages import is_outage
from store import conversations, inbox, message_updates, outbound
from store.outbound import NewReply
from store.records import InboxItem, OutboundRow


@dataclass(frozen=True, slots=True)
class MessageUpdate:
    """A reaction, edit or revoke of an earlier message of the conversation."""

    kind: Literal["reaction", "edit", "revoke"]
    target_wamid: str
    value: str | None = None  # the emoji, or the edited text


@dataclass(frozen=True, slots=True)
class FlowStep:
    variables: dict[str, Any]
    pending: dict[str, Any] | None


@dataclass(slots=True)
class TurnPlan:
    reply: NewReply | None = None
    updates: list[MessageUpdate] = field(default_factory=list)
    return_to_bot: bool = False
    flow: FlowStep | None = None
    handoff: str | None = None  # the reason, when the conversation goes to a person


@dataclass(frozen=True, slots=True)
class Committed:
    """What the commit found or wrote."""

    reply: OutboundRow | None = None
    # An earlier message of the conversation is still open: nothing was written.
    blocked_by: int | None = None
    # Already processed (by another handler, or now, having no reply).
    processed: bool = False


@contextlib.asynccontextmanager
async def turn_transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection in a transaction; a connection lost meanwhile raises as an outage.

    asyncpg's rollback on the dead connection raises InterfaceError ("the underlying
    connection is closed") over the error that says why (ConnectionDoesNotExistError);
    that one must reach the caller, for the turn waits for Postgres instead of spending a
    try of its message (DESIGN.md §3, dead letters are for poison).
    """
    try:
        async with pool.acquire() as conn, conn.transaction():
            yield conn
    except asyncpg.InterfaceError as exc:
        lost = exc.__context__
        if lost is None or not is_outage(lost):
            raise
        raise lost from None


async def commit_turn(pool: asyncpg.Pool, item: InboxItem, plan: TurnPlan) -> Committed:
    async with turn_transaction(pool) as conn:
        await inbox.lock_conversation(conn, item.conversation_id)
        # Checked again under the lock: a second gateway may have committed an earlier
        # message since, or another handler this very turn.
        work = await inbox.work_state(conn, item.message_id)
        if work is None or work.processed:
            return Committed(processed=True)
        if work.blocked_by is not None:
            return Committed(blocked_by=work.blocked_by)
        if work.reply is not None:
            return Committed(reply=work.reply)
        await apply_effects(conn, item, plan)
        if plan.reply is None:
            await inbox.mark_processed(conn, [item.message_id])
            return Committed(processed=True)
        return Committed(reply=await outbound.reserve_reply(conn, plan.reply))


def has_effects(plan: TurnPlan) -> bool:
    """Whether the turn changes more than its own message (rare: most turns only reply)."""
    return bool(
        plan.updates or plan.return_to_bot or plan.flow is not None or plan.handoff is not None
    )


async def apply_effects(conn: asyncpg.Connection, item: InboxItem, plan: TurnPlan) -> None:
    """The turn's writes besides its reply, in the caller's transaction, under its lock."""
    cid = item.conversation_id
    for u in plan.updates:
        if u.kind == "reaction":
            await message_updates.set_reaction(conn, cid, u.target_wamid, u.value)
        elif u.kind == "edit":
            await message_updates.apply_edit(conn, cid, u.target_wamid, u.value)
        else:
            await message_updates.apply_revoke(conn, cid, u.target_wamid)
    if plan.return_to_bot:
        await conversations.return_to_bot(conn, cid)
    if plan.flow is not None:
        await conversations.save_flow(conn, cid, plan.flow.variables, plan.flow.pending)
    if plan.handoff is not None:
        await conversations.flag_for_human(conn, cid, plan.handoff)
