"""Many conversations asking the database the same kind of question become one statement.

A shard runs hundreds of conversations at once, each one message at a time; when they
each read their work state or mark a message processed, those calls arrive within one
turn of the event loop. A `Coalescer` gathers the keys asked for in that turn and answers
them all from one `... = ANY($1)` statement, so a shard's statements per message fall as
its load rises (issue 13: the round trips, not the SQL, were the shard's CPU).

A failed statement fails every caller of its batch with the same error, which each
handles as it would its own (an outage waits, DESIGN.md §3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[Sequence[K]], Awaitable[Mapping[K, V]]]


class Coalescer(Generic[K, V]):
    def __init__(self, fetch: Fetch[K, V], *, max_batch: int = 500) -> None:
        self._fetch = fetch
        self._max_batch = max_batch
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()
        self.statements = 0  # how many batches were sent: for tests and stats
        self.keys = 0

    async def get(self, key: K) -> V | None:
        """The answer for `key` (None when the statement returned nothing for it)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        if not self._scheduled:
            # The next turn of the loop: every caller of this turn joins the batch.
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._waiting:
            keys = list(self._waiting)[: self._max_batch]
            batch = {k: self._waiting.pop(k) for k in keys}
            task = asyncio.ensure_future(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        self.statements += 1
        self.keys += len(batch)
        try:
            answers = await self._fetch(list(batch))
        except asyncio.CancelledError:
            for futures in batch.values():
                for f in futures:
                    f.cancel()
            raise
        except Exception as exc:
            for futures in batch.values():
                for f in futures:
                    if not f.done():
                        f.set_exception(exc)
            return
        for key, futures in batch.items():
            for f in futures:
                if not f.done():
                    f.set_result(answers.get(key))
