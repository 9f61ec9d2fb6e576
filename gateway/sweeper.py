"""The inbox sweeper: routes again stored messages that have waited too long.

A message can miss its shard: the router queue was full, a shard died with the batch,
a handler gave up after retries. Its row is still unprocessed in Postgres, so a
periodic replay closes the gap; shards drop what they already hold or have finished.

It pages through the backlog only as fast as the router has room (DESIGN.md §3), so a
backlog of any size is swept with one page in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

import structlog

from gateway.background import BackgroundTask
from gateway.ingest import PoolHolder
from store import inbox
from store.records import InboxItem

log = structlog.get_logger(__name__)

ROOM_POLL_SECONDS = 0.1


class SweepTarget(Protocol):
    """Where swept items go (actors.conversation.router.ShardRouter)."""

    def has_room(self, count: int) -> bool: ...
    def resubmit(self, items: Sequence[InboxItem]) -> None: ...


class InboxSweeper:
    def __init__(
        self,
        pools: PoolHolder,
        dispatcher: SweepTarget,
        *,
        interval: float = 30.0,
        older_than: float = 60.0,
        page: int = 1000,
    ) -> None:
        self._pools = pools
        self._dispatcher = dispatcher
        self._interval = interval
        self._older_than = older_than
        self._page = page
        self._background = BackgroundTask("inbox-sweeper")

    def start(self) -> None:
        self._background.start(self._loop)

    async def stop(self) -> None:
        await self._background.stop()

    async def sweep_once(self, older_than: float | None = None) -> int:
        """Route every waiting row once, a page at a time; return how many were routed.

        A page waits for room in the router; one that finds none within the sweep
        interval ends the sweep, and the next sweep starts again from the oldest row.
        `older_than=0` sweeps everything open now (a gateway died with rows in hand;
        shards drop what they already hold).
        """
        older_than = self._older_than if older_than is None else older_than
        pool = await self._pools.get()
        after_id, total = 0, 0
        while True:
            if not await self._room_for(self._page):
                return total
            async with pool.acquire() as conn:
                items = await inbox.unprocessed(
                    conn, older_than_seconds=older_than, after_id=after_id, limit=self._page
                )
            if not items:
                return total
            self._dispatcher.resubmit(items)
            total += len(items)
            after_id = items[-1].message_id
            if len(items) < self._page:
                return total

    async def _room_for(self, count: int) -> bool:
        deadline = time.monotonic() + self._interval
        while not self._dispatcher.has_room(count):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(ROOM_POLL_SECONDS)
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if count := await self.sweep_once():
                    log.info("inbox_swept", messages=count)
            except Exception as exc:
                log.warning("inbox_sweep_failed", error=repr(exc))
