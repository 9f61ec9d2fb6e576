"""ShardRouter: sends stored inbox items to their shard in micro-batches.

Runs in the gateway process. A consistent hash of the customer's phone picks the
shard; each shard has its own bounded queue and flush task, which sends a batch every
`max_delay` or `max_batch` items, never one Ray call per message (DESIGN.md §2).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence

import structlog

from actors.client import ShardHandle
from actors.conversation.metrics import ROUTER_OVERFLOW, ROUTER_QUEUE_DEPTH
from actors.conversation.placement import shard_for
from store.records import InboxItem

log = structlog.get_logger(__name__)


class ShardRouter:
    def __init__(
        self,
        shards: Sequence[ShardHandle],
        *,
        max_batch: int = 100,
        max_delay: float = 0.005,
        queue_limit: int = 10_000,
        keepalive: float = 2.0,
    ) -> None:
        self._shards = list(shards)
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue_limit = queue_limit
        self._queues: list[deque[InboxItem]] = [deque() for _ in self._shards]
        self._wakeups = [asyncio.Event() for _ in self._shards]
        self._tasks: list[asyncio.Task[None]] = []
        self._keepalive = keepalive

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._flush_loop(i), name=f"router-{i}")
                for i in range(len(self._shards))
            ]
            self._tasks.append(asyncio.create_task(self._keepalive_loop(), name="router-ping"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def submit(self, items: Sequence[InboxItem]) -> None:
        for item in items:
            index = shard_for(item.customer_phone, len(self._shards))
            queue = self._queues[index]
            if len(queue) >= self._queue_limit:
                # Bounded memory under overload: the row is durable, and the inbox
                # sweeper routes it again once the shard catches up.
                ROUTER_OVERFLOW.inc()
                continue
            queue.append(item)
            self._wakeups[index].set()
        for index, queue in enumerate(self._queues):
            ROUTER_QUEUE_DEPTH.labels(str(index)).set(len(queue))

    async def _flush_loop(self, index: int) -> None:
        queue, wakeup, shard = self._queues[index], self._wakeups[index], self._shards[index]
        while True:
            await wakeup.wait()
            if len(queue) < self._max_batch:
                await asyncio.sleep(self._max_delay)
            batch = [queue.popleft() for _ in range(min(self._max_batch, len(queue)))]
            if not queue:
                wakeup.clear()
            ROUTER_QUEUE_DEPTH.labels(str(index)).set(len(queue))
            if not batch:
                continue
            try:
                # Awaiting the shard's acceptance is the back-pressure: a slow or
                # restarting shard lets this queue fill rather than memory elsewhere.
                await shard.deliver.remote(batch)
            except Exception as exc:
                log.warning("shard_delivery_failed", shard=index, items=len(batch), error=repr(exc))

    async def _keepalive_loop(self) -> None:
        # A restarted shard has empty memory and replays its inbox on its first call;
        # pinging makes that first call come soon even when no customer is writing.
        while True:
            await asyncio.sleep(self._keepalive)
            for index, shard in enumerate(self._shards):
                try:
                    await asyncio.wait_for(shard.ping.remote(), 10)
                except Exception as exc:
                    log.warning("shard_ping_failed", shard=index, error=repr(exc))
