"""The turns of a shard's conversations that finish planning together, committed together.

Most turns finish in the same turn of the event loop as many others (the LLM pool answers
a shard's requests in batches), and committed one by one each costs six round trips:
BEGIN, the conversation's lock, the gate re-read, the reservation, COMMIT. Here they
share one transaction and one statement per step, whatever their number:

1. the advisory locks of all their conversations, in ascending order, in one statement
   (store.inbox.lock_conversations: deadlock free beside the single-lock takers);
2. one re-read of their work states under the locks: the order gate, checked again;
3. the rare effects (reactions, edits, revokes, the bot taking back, flow step, hand-off)
   with the per-turn functions, in the order the gateway locks conversation rows;
4. every reply reserved by one INSERT, every turn without a reply marked processed by one
   UPDATE; then COMMIT, and each caller gets its own `Committed`.

Each turn stays atomic (DESIGN.md §3): its effects and its reservation commit together,
with the batch. A batch that fails for an outage (Postgres gone, the connection cut) fails
every caller, and each waits and retries its own turn as it would alone. A batch that
fails for any other reason, one turn's data refused by Postgres say, is committed again
turn by turn (commit_turn), so one bad turn fails only itself.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence

import asyncpg
import structlog

from actors.coalesce import Coalescer
from actors.conversation.turn_plan import (
    Committed,
    TurnPlan,
    apply_effects,
    commit_turn,
    has_effects,
    turn_transaction,
)
from actors.outages import is_outage
from store import inbox, outbound
from store.db import retry_conflicts
from store.records import InboxItem

log = structlog.get_logger(__name__)

Turn = tuple[InboxItem, TurnPlan]

# Each lock is a slot of Postgres's shared lock table (max_locks_per_transaction times
# max_connections, 6,400 by default) for the whole server: a batch stays well below it.
MAX_BATCH = 100


async def commit_turns(pool: asyncpg.Pool, turns: Sequence[Turn]) -> dict[int, Committed]:
    """Commit these turns (of distinct messages) in one transaction; by inbound message id."""
    done: dict[int, Committed] = {}
    async with turn_transaction(pool) as conn:
        await inbox.lock_conversations(conn, [item.conversation_id for item, _ in turns])
        # Checked again under the locks: another shard or gateway may have committed an
        # earlier message since. Read together, so of two messages of one conversation in
        # this batch the later one sees the earlier open and waits for it.
        works = await inbox.work_states(conn, [item.message_id for item, _ in turns])
        todo: list[Turn] = []
        for item, plan in turns:
            work = works.get(item.message_id)
            if work is None or work.processed:
                done[item.message_id] = Committed(processed=True)
            elif work.blocked_by is not None:
                done[item.message_id] = Committed(blocked_by=work.blocked_by)
            elif work.reply is not None:
                done[item.message_id] = Committed(reply=work.reply)
            else:
                todo.append((item, plan))
        # The gateway's upsert locks conversation rows sorted by (business number, phone):
        # the same order here, so the two never wait for each other in a cycle.
        for item, plan in sorted(
            (t for t in todo if has_effects(t[1])),
            key=lambda t: (t[0].business_number, t[0].customer_phone, t[0].message_id),
        ):
            await apply_effects(conn, item, plan)
        replies = [plan.reply for _, plan in todo if plan.reply is not None]
        reserved = await outbound.reserve_replies(conn, replies)
        silent = [item.message_id for item, plan in todo if plan.reply is None]
        if silent:
            await inbox.mark_processed(conn, silent)
    for item, plan in todo:
        if plan.reply is None:
            done[item.message_id] = Committed(processed=True)
        else:
            done[item.message_id] = Committed(reply=reserved[plan.reply.reply_to_id])
    return done


class BatchedCommit:
    """`commit(item, plan)` for each conversation; those asking in one loop turn share a batch."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = MAX_BATCH) -> None:
        self._pool = pool
        # By a token of each call, not by message: a second call for a message already in
        # a batch not yet started must not replace the first one's turn.
        self._turns: dict[int, Turn] = {}
        self._tokens = itertools.count()
        self._batches: Coalescer[int, Committed | BaseException] = Coalescer(
            self._commit, max_batch=max_batch
        )
        self.fallbacks = 0  # batches committed again turn by turn: for tests and stats

    @property
    def batches(self) -> int:
        return self._batches.statements

    async def commit(self, item: InboxItem, plan: TurnPlan) -> Committed:
        token = next(self._tokens)
        self._turns[token] = (item, plan)
        outcome = await self._batches.get(token)
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None, "every turn of a batch is answered"
        return outcome

    async def _commit(self, tokens: Sequence[int]) -> Mapping[int, Committed | BaseException]:
        calls = {t: self._turns.pop(t) for t in tokens}
        turns = list({item.message_id: (item, plan) for item, plan in calls.values()}.values())
        outcomes = await self._commit_turns(turns)
        return {t: outcomes[item.message_id] for t, (item, _) in calls.items()}

    async def _commit_turns(self, turns: list[Turn]) -> dict[int, Committed | BaseException]:
        if len(turns) == 1:
            # Alone: nothing to share, and a failure is its own.
            item, plan = turns[0]
            return {item.message_id: await commit_turn(self._pool, item, plan)}
        try:
            return dict(await retry_conflicts(lambda: commit_turns(self._pool, turns)))
        except Exception as exc:
            if is_outage(exc):
                raise  # every caller waits for Postgres, as each would alone
            self.fallbacks += 1
            log.warning("batched_commit_fell_back", turns=len(turns), error=repr(exc)[:300])
        outcomes = await asyncio.gather(
            *(commit_turn(self._pool, item, plan) for item, plan in turns),
            return_exceptions=True,
        )
        return {item.message_id: o for (item, _), o in zip(turns, outcomes, strict=True)}
