"""ShardRouter: sends stored inbox items to their shard in micro-batches.

Runs in the gateway process. A consistent hash of the customer's phone picks the
shard; each shard has its own bounded queue and flush task, which sends a batch every
`max_delay` or `max_batch` items, never one Ray call per message (DESIGN.md §2).

Back-pressure (DESIGN.md §3): a full shard takes only the first part of a batch; the
rest goes back to the head of the queue and is offered again shortly. Past the queue's
limit items are dropped from memory, which is safe because their rows are durable and
the inbox sweeper routes them again. A phone whose message was dropped has its later
live messages dropped too, until the sweeper brings the older one back, so a later
message never overtakes an earlier one here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence

import structlog

from actors.client import ShardHandle
from actors.conversation.metrics import ROUTER_DEFERRED, ROUTER_OVERFLOW, ROUTER_QUEUE_DEPTH
from actors.conversation.placement import shard_for
from store.records import InboxItem

log = structlog.get_logger(__name__)

PhoneKey = tuple[str, str]
# A shard whose call failed (restarting, say) is offered its batch again after this long.
FAILED_RETRY_SECONDS = 1.0


class ShardRouter:
    def __init__(
        self,
        shards: Sequence[ShardHandle],
        *,
        max_batch: int = 100,
        max_delay: float = 0.005,
        queue_limit: int = 10_000,
        keepalive: float = 2.0,
        full_retry: float = 0.05,
    ) -> None:
        self._shards = list(shards)
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue_limit = queue_limit
        self._queues: list[deque[InboxItem]] = [deque() for _ in self._shards]
        self._wakeups = [asyncio.Event() for _ in self._shards]
        self._tasks: list[asyncio.Task[None]] = []
        self._keepalive = keepalive
        self._full_retry = full_retry
        # Phones with a dropped message: the highest dropped id. Bounded like the queues;
        # forgetting one only costs order help the SQL gate gives anyway.
        self._dropped: dict[PhoneKey, int] = {}

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

    def has_room(self, count: int) -> bool:
        """Whether every shard's queue can take `count` more items (the sweeper's pace);
        a count over the limit asks for empty queues."""
        need = min(count, self._queue_limit)
        return all(len(q) + need <= self._queue_limit for q in self._queues)

    def queued(self) -> int:
        return sum(len(q) for q in self._queues)

    def submit(self, items: Sequence[InboxItem]) -> None:
        """Live items, just stored."""
        self._enqueue(items, swept=False)

    def resubmit(self, items: Sequence[InboxItem]) -> None:
        """Items the sweeper found waiting too long, in inbox order."""
        self._enqueue(items, swept=True)

    def _enqueue(self, items: Sequence[InboxItem], *, swept: bool) -> None:
        touched: set[int] = set()
        for item in items:
            key = (item.business_number, item.customer_phone)
            mark = self._dropped.get(key)
            if mark is not None and not swept and item.message_id > mark:
                # An earlier message of this phone waits in the inbox: this one joins it.
                self._drop(key, item)
                continue
            index = shard_for(item.customer_phone, len(self._shards))
            queue = self._queues[index]
            if len(queue) >= self._queue_limit:
                self._drop(key, item)
                continue
            if mark is not None and swept and item.message_id >= mark:
                del self._dropped[key]
            queue.append(item)
            touched.add(index)
        for index in touched:
            self._wakeups[index].set()
            ROUTER_QUEUE_DEPTH.labels(str(index)).set(len(self._queues[index]))

    def _drop(self, key: PhoneKey, item: InboxItem) -> None:
        # Bounded memory under overload: the row is durable, and the inbox sweeper
        # routes it again once the shard catches up.
        ROUTER_OVERFLOW.inc()
        self._dropped[key] = max(item.message_id, self._dropped.pop(key, 0))
        if len(self._dropped) > self._queue_limit:
            del self._dropped[next(iter(self._dropped))]

    def _put_back(self, index: int, rest: list[InboxItem]) -> None:
        """Items a shard did not take go back to the head, in order; the tail overflows."""
        queue = self._queues[index]
        queue.extendleft(reversed(rest))
        ROUTER_DEFERRED.inc(len(rest))
        while len(queue) > self._queue_limit:
            item = queue.pop()
            self._drop((item.business_number, item.customer_phone), item)

    async def _flush_loop(self, index: int) -> None:
        queue, wakeup, shard = self._queues[index], self._wakeups[index], self._shards[index]
        while True:
            await wakeup.wait()
            if len(queue) < self._max_batch:
                await asyncio.sleep(self._max_delay)
            batch = [queue.popleft() for _ in range(min(self._max_batch, len(queue)))]
            if not queue:
                wakeup.clear()
            if not batch:
                continue
            # The shard takes a prefix in inbox order, so the rest is known by its count.
            batch.sort(key=lambda i: i.message_id)
            try:
                # Awaiting the shard's answer is the back-pressure: a slow or restarting
                # shard lets this queue fill rather than memory elsewhere.
                taken = await shard.deliver.remote(batch)
            except Exception as exc:
                log.warning("shard_delivery_failed", shard=index, items=len(batch), error=repr(exc))
                taken, pause = 0, FAILED_RETRY_SECONDS
            else:
                pause = self._full_retry
            if taken < len(batch):
                self._put_back(index, batch[taken:])
                wakeup.set()
                # The shard is full (or down): give it time to make room.
                await asyncio.sleep(pause)
            ROUTER_QUEUE_DEPTH.labels(str(index)).set(len(queue))

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
