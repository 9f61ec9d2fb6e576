"""The send ledger's common steps, shared by the replies a delivery actor sends at once.

A batch of replies handed to the actor runs as concurrent tasks, and on the happy path
they reach the same step in the same turn of the loop: read what each reply starts from,
make its parts, claim them, record what the provider took. One reply at a time that was
about ten statements each, and the round trips, not the SQL, were the actor's CPU
(issue 13). Here each step of the replies asking together is one statement, through
actors.coalesce. Every statement is the same conditional one as for a single part, over
`unnest` arrays, so the ledger's guarantees (DESIGN.md §3) hold row by row.

The unusual paths (a lapsed lease, an unknown outcome, the order gate's poll, failures)
stay one part at a time in actors.delivery.ledger_send.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from actors.coalesce import Coalescer
from actors.outages import is_outage
from store import outbound, send_ledger
from store.db import retry_conflicts
from store.outbound import SendStart
from store.send_ledger import Part, PartState

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


class Batched(Generic[A, R]):
    """A call whose callers in one turn of the loop share one run of `run`, which answers
    a list of arguments with a list of answers, in order.

    A failed run that is an outage fails every caller with its error: each one's own
    statement would have met it, and each waits it out as before (actors.outages). Any
    other failure runs each caller alone, so one caller's bad row fails that caller only,
    as its own statement would have.
    """

    def __init__(self, run: Callable[[list[A]], Awaitable[Sequence[R]]]) -> None:
        self._run = run
        self._args: dict[int, A] = {}
        self._ids = itertools.count()
        self._coalescer: Coalescer[int, R | _Failed] = Coalescer(self._fetch)

    @property
    def statements(self) -> int:
        """How many runs were made (for tests and stats)."""
        return self._coalescer.statements

    async def __call__(self, arg: A) -> R:
        key = next(self._ids)
        self._args[key] = arg
        try:
            answer = await self._coalescer.get(key)
        finally:
            self._args.pop(key, None)
        if isinstance(answer, _Failed):
            raise answer.error
        return answer  # type: ignore[return-value]

    async def _fetch(self, keys: Sequence[int]) -> Mapping[int, R | _Failed]:
        # A caller cancelled before the run has no argument left: it is not asked for.
        live = [k for k in keys if k in self._args]
        args = [self._args[k] for k in live]
        if not args:
            return {}
        try:
            answers = await retry_conflicts(lambda: self._run(args))
        except Exception as exc:
            if is_outage(exc) or len(args) == 1:
                raise
            return {k: await self._alone(a) for k, a in zip(live, args, strict=True)}
        return dict(zip(live, answers, strict=True))

    async def _alone(self, arg: A) -> R | _Failed:
        try:
            [answer] = await self._run([arg])
        except Exception as exc:
            return _Failed(exc)
        return answer


# (message id, part payloads, state of the new parts)
NewParts = tuple[int, Sequence[dict[str, Any]], PartState]


class BatchedLedger:
    def __init__(self, pool: asyncpg.Pool, lease_seconds: float) -> None:
        self._pool = pool
        self._lease_seconds = lease_seconds
        # Reply id → its parts if made, else its send facts; None for no such reply.
        self.start: Batched[int, SendStart | None] = Batched(self._starts)
        self.create_parts: Batched[NewParts, list[Part]] = Batched(self._create)
        # (part, owner) → claimed, with the messages row showing it in the same commit.
        self.claim: Batched[tuple[Part, str], bool] = Batched(self._claim)
        # (part, owner, wamid) → recorded as sent (False: something else recorded it).
        self.record_sent: Batched[tuple[Part, str, str], bool] = Batched(self._record_sent)

    async def _starts(self, reply_ids: list[int]) -> list[SendStart | None]:
        async with self._pool.acquire() as conn:
            starts = await outbound.send_starts(conn, reply_ids)
        return [starts.get(i) for i in reply_ids]

    async def _create(self, asked: list[NewParts]) -> list[list[Part]]:
        async with self._pool.acquire() as conn:
            made = await send_ledger.create_parts_many(
                conn, [(m, payloads) for m, payloads, _ in asked], states=[s for *_, s in asked]
            )
        return [made.get(m, []) for m, _, _ in asked]

    async def _claim(self, asked: list[tuple[Part, str]]) -> list[bool]:
        # One transaction: a claim whose status sync failed (Postgres going away between
        # the two) is rolled back, never left held by a sender that will not send it.
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await send_ledger.claim_many(
                conn, [(p.id, owner) for p, owner in asked], self._lease_seconds
            )
            if claimed:
                ids = sorted({p.message_id for p, owner in asked if (p.id, owner) in claimed})
                await send_ledger.sync_messages(conn, ids)
        return [(p.id, owner) in claimed for p, owner in asked]

    async def _record_sent(self, asked: list[tuple[Part, str, str]]) -> list[bool]:
        async with self._pool.acquire() as conn:
            recorded = await send_ledger.finish_sent_many(
                conn, [(p.id, owner, wamid) for p, owner, wamid in asked]
            )
            # At once, in this order: a status webhook finds the messages row by this id,
            # and MSG91 may have reported on it before we knew its id.
            await send_ledger.sync_messages(conn, sorted({p.message_id for p, _, _ in asked}))
            await outbound.apply_held(conn, [wamid for _, _, wamid in asked])
        return [(p.id, wamid) in recorded for p, _, wamid in asked]
