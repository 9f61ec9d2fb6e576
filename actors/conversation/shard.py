"""ConversationShard: a Ray actor hosting many virtual conversation actors.

The gateway's router sends it micro-batches of stored inbox items. Each item goes to
its phone's virtual actor (actors.conversation.virtual), which handles it in order.
The shard only hosts: the activation table, passivation, replay, and the batching of
the side channels conversations share (LLM and delivery calls, read receipts, media
downloads), handed to them as one ConversationContext.

A restart re-runs __init__ with empty memory (DESIGN.md §2), so the first call after
a (re)start replays this shard's unprocessed inbox rows from Postgres.

Memory is bounded (DESIGN.md §3, back-pressure): the shard holds at most
`shard_max_queued` messages, waiting or in hand, across its conversations. `deliver()`
takes what fits and says how many; the router keeps the rest, and whatever it cannot
keep stays durable in the inbox for the sweeper. The replay pages through the backlog
only as fast as room frees.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import asyncpg
import ray
import structlog
from redis.asyncio import Redis

from actors.batching import StreamBatcher
from actors.conversation.abuse_limit import AbuseLimit
from actors.conversation.batched_store import BatchedStore
from actors.conversation.context import ConversationContext, SideChannels
from actors.conversation.flows.source import FlowSource
from actors.conversation.placement import shard_for
from actors.conversation.turn import TurnPlanner
from actors.conversation.virtual import VirtualConversation
from actors.wire import DeliveryRequest, DeliveryResult, LLMRequest, LLMResult
from config import Settings
from config.logs import configure_logging
from store import inbox
from store.db import create_pool
from store.records import InboxItem
from store.settings_watch import SettingsWatcher
from store.snapshots import SnapshotStore

log = structlog.get_logger(__name__)

# How often a full shard's replay looks for room again.
ROOM_POLL_SECONDS = 0.05


class ConversationShard:
    def __init__(
        self,
        settings: Settings,
        index: int,
        shard_count: int,
        database_url: str,
        redis_url: str,
        llm_actor_names: list[str],
        delivery_actor_names: list[str],
    ) -> None:
        configure_logging(settings.log_level)
        self._settings = settings
        self._index = index
        self._shard_count = shard_count
        self._database_url = database_url
        self._redis_url = redis_url
        self._llm_names = llm_actor_names
        self._delivery_names = delivery_actor_names
        self._conversations: dict[tuple[str, str], VirtualConversation] = {}
        self._started: asyncio.Task[None] | None = None
        self._max_queued = settings.shard_max_queued
        self._replaying = True  # until the start-up replay has posted the whole backlog
        self._closing = False
        self._refused = 0
        self._media_call: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._pool: asyncpg.Pool
        self._redis: Redis
        self._llm: StreamBatcher[LLMRequest, LLMResult]
        self._delivery: StreamBatcher[DeliveryRequest, DeliveryResult]
        self._delivery_actors: list[Any] = []
        self._side_channels = SideChannels()
        self._ctx: ConversationContext
        self.activations = {"redis": 0, "postgres": 0}

    # -- lifecycle -------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        if self._started is None:
            self._started = asyncio.create_task(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        s = self._settings
        self._pool = await create_pool(self._database_url, min_size=1, max_size=s.db_pool_max)
        self._redis = Redis.from_url(self._redis_url)
        ns = s.ray_namespace
        llm = [ray.get_actor(n, namespace=ns) for n in self._llm_names]
        delivery = [ray.get_actor(n, namespace=ns) for n in self._delivery_names]
        self._delivery_actors = delivery
        delay = s.batch_max_delay_ms / 1000
        self._llm = StreamBatcher(
            lambda i, batch: llm[i].complete.remote(batch),
            len(llm),
            max_batch=s.batch_max_messages,
            max_delay=delay,
            name="llm",
        )
        self._delivery = StreamBatcher(
            lambda i, batch: delivery[i].send.remote(batch),
            len(delivery),
            max_batch=s.batch_max_messages,
            max_delay=delay,
            name="delivery",
        )
        planner = TurnPlanner(
            s,
            AbuseLimit(
                self._redis,
                prefix=s.redis_key_prefix,
                limit=s.abuse_messages_per_window,
                window=s.abuse_window_seconds,
            ),
            self._llm.request,
            FlowSource(
                s.flows_path,
                SettingsWatcher(
                    self._pool,
                    self._redis,
                    prefix=s.redis_key_prefix,
                    refresh_seconds=s.settings_refresh_seconds,
                ),
                refresh_seconds=s.settings_refresh_seconds,
            ),
        )
        self._ctx = ConversationContext(
            settings=s,
            pool=self._pool,
            store=BatchedStore(self._pool, self._redis),
            redis=self._redis,
            snapshots=SnapshotStore(
                self._redis, prefix=s.redis_key_prefix, ttl_seconds=s.snapshot_ttl_seconds
            ),
            planner=planner,
            send_reply=self._delivery.request,
            side_channels=self._side_channels,
            activations=self.activations,
            room=lambda: self._max_queued - self._held(),
        )
        self._spawn(self._passivation_loop())
        self._spawn(self._read_receipt_loop())
        self._spawn(self._replay_unprocessed())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _replay_unprocessed(self) -> None:
        # One page in memory at a time, posted only as room frees: a backlog of any size
        # replays with flat memory.
        after_id, replayed = 0, 0
        try:
            while not self._closing:
                async with self._pool.acquire() as conn:
                    page = await inbox.unprocessed(
                        conn, after_id=after_id, limit=self._settings.replay_page_size
                    )
                if not page:
                    break
                after_id = page[-1].message_id
                mine = [
                    i for i in page if shard_for(i.customer_phone, self._shard_count) == self._index
                ]
                while mine and not self._closing:
                    taken = self._take(mine)
                    mine = mine[taken:]
                    replayed += taken
                    if mine:
                        await asyncio.sleep(ROOM_POLL_SECONDS)
        finally:
            self._replaying = False
        if replayed:
            log.info("shard_replayed_inbox", shard=self._index, messages=replayed)

    async def _read_receipt_loop(self) -> None:
        # Read ticks and media downloads go out in batches, fire and forget, every half second.
        turn = 0
        while True:
            await asyncio.sleep(0.5)
            if not self._delivery_actors:
                continue
            actor = self._delivery_actors[turn % len(self._delivery_actors)]
            turn += 1
            side = self._side_channels
            if side.read_receipts:
                actor.mark_read.remote(side.take_read_receipts())
            # One media batch in flight per shard, of bounded size: downloads never pile
            # up in the delivery actor faster than it finishes them.
            busy = self._media_call is not None and not self._media_call.done()
            if side.media_fetches and not busy:
                size = self._settings.media_fetch_batch
                batch, side.media_fetches = side.media_fetches[:size], side.media_fetches[size:]
                self._media_call = asyncio.create_task(self._fetch_media(actor, batch))

    async def _fetch_media(self, actor: Any, batch: list[tuple[int, str]]) -> None:
        try:
            await actor.fetch_media.remote(batch)
        except Exception as exc:
            # Media is best effort: the message is answered whether or not it downloads.
            log.info("media_fetch_failed", items=len(batch), error=repr(exc)[:200])

    async def _passivation_loop(self) -> None:
        period = max(1.0, min(self._settings.conversation_idle_seconds / 4, 30.0))
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(Exception):
                await self.passivate_idle(self._settings.conversation_idle_seconds)

    # -- remote API ------------------------------------------------------------------

    async def ping(self) -> int:
        await self._ensure_started()
        return self._index

    async def deliver(self, batch: list[InboxItem]) -> int:
        """Take what fits of a micro-batch: the first N in inbox order; return N.

        The router keeps the rest at the head of its queue. Nothing is taken once the
        shard is closing. Live batches and the replay share the room; the order gate in
        Postgres puts a phone's older replayed rows ahead of a newer live one.
        """
        await self._ensure_started()
        taken = 0 if self._closing else self._take(batch)
        self._refused += len(batch) - taken
        return taken

    async def passivate_idle(self, max_idle_seconds: float = 0.0) -> int:
        """Write snapshots of conversations idle this long and free their memory."""
        await self._ensure_started()
        now = time.monotonic()
        idle = [
            key for key, conv in self._conversations.items() if _idle(conv, now, max_idle_seconds)
        ]
        freed = 0
        for key in idle:
            conv = self._conversations.get(key)
            if conv is None or not _idle(conv, time.monotonic(), max_idle_seconds):
                continue
            seen = conv.last_active
            await conv.passivate()
            # A message may have come in while the snapshot was written: keep the
            # conversation then, or the next message would start a second one beside it.
            if (
                self._conversations.get(key) is conv
                and conv.last_active == seen
                and _idle(conv, time.monotonic(), max_idle_seconds)
            ):
                del self._conversations[key]
                freed += 1
        return freed

    async def drain(self) -> None:
        """Wait until every mailbox is empty (tests)."""
        for conv in list(self._conversations.values()):
            await conv.idle()

    async def close(self, timeout: float) -> dict[str, int]:  # noqa: ASYNC109
        """Shutdown: take nothing more, finish the messages in hand, bounded by `timeout`.

        Waiting messages are dropped from memory (their rows stay unprocessed, replayed at
        the next start), so a stop waits for at most one message per conversation; a send
        still in flight when the time is up is left to the send ledger's recovery.
        """
        self._closing = True
        left = sum(conv.close() for conv in self._conversations.values())
        busy = [c.idle() for c in self._conversations.values() if c.busy]
        if busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*busy), timeout)
        in_hand = sum(c.busy for c in self._conversations.values())
        log.info("shard_closed", shard=self._index, left_queued=left, still_in_hand=in_hand)
        return {"left_queued": left, "in_hand": in_hand}

    async def stats(self) -> dict[str, Any]:
        queued = sum(c.queued for c in self._conversations.values())
        in_hand = self._held() - queued
        return {
            "shard": self._index,
            "pid": os.getpid(),
            "active_conversations": len(self._conversations),
            "queued": queued,
            "in_hand": in_hand,
            "held": queued + in_hand,
            "max_queued": self._max_queued,
            "refused": self._refused,
            "replaying": self._replaying,
            "activations": dict(self.activations),
        }

    # -- hosting -------------------------------------------------------------------

    def _held(self) -> int:
        # A message in hand counts as much as a waiting one: a flood of new phones would
        # otherwise start one conversation each, without bound.
        return sum(c.held for c in self._conversations.values())

    def _take(self, items: list[InboxItem]) -> int:
        """Post the first items, in inbox order, that fit under the bound; return how many.

        A prefix of the ordered batch is a prefix per phone too: a phone's later message
        is never taken while an earlier one is left behind.
        """
        room = self._max_queued - self._held()
        ordered = sorted(items, key=lambda i: i.message_id)[: max(room, 0)]
        for item in ordered:
            key = (item.business_number, item.customer_phone)
            conv = self._conversations.get(key)
            if conv is None:
                conv = VirtualConversation(item.business_number, item.customer_phone, self._ctx)
                self._conversations[key] = conv
            conv.post(item)
        return len(ordered)


def _idle(conv: VirtualConversation, now: float, max_idle_seconds: float) -> bool:
    return not conv.busy and not conv.queued and now - conv.last_active >= max_idle_seconds
