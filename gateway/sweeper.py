"""The inbox sweeper: routes again stored messages that have waited too long.

A message can miss its shard: the router queue was full, a shard died with the batch,
a handler gave up after retries. Its row is still unprocessed in Postgres, so a
periodic replay closes the gap; shards drop what they already hold or have finished.
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.background import BackgroundTask
from gateway.ingest import PoolHolder
from gateway.state import Dispatcher
from store import inbox

log = structlog.get_logger(__name__)


class InboxSweeper:
    def __init__(
        self,
        pools: PoolHolder,
        dispatcher: Dispatcher,
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

    async def sweep_once(self) -> int:
        pool = await self._pools.get()
        after_id, total = 0, 0
        while True:
            async with pool.acquire() as conn:
                items = await inbox.unprocessed(
                    conn, older_than_seconds=self._older_than, after_id=after_id, limit=self._page
                )
            if not items:
                return total
            self._dispatcher.submit(items)
            total += len(items)
            after_id = items[-1].message_id
            if len(items) < self._page:
                return total

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if count := await self.sweep_once():
                    log.info("inbox_swept", messages=count)
            except Exception as exc:
                log.warning("inbox_sweep_failed", error=repr(exc))
