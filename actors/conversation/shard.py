"""ConversationShard: a Ray actor hosting many virtual conversation actors.

The gateway's router sends it micro-batches of stored inbox items. Each item goes to
its phone's virtual actor (actors.conversation.virtual), which handles it in order.
The shard only hosts: the activation table, passivation, replay, and the batching of
the side channels conversations share (LLM and delivery calls, read receipts, media
downloads), handed to them as one ConversationContext.

A restart re-runs __init__ with empty memory (DESIGN.md §2), so the first call after
a (re)start replays this shard's unprocessed inbox rows from Postgres.
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
            redis=self._redis,
            snapshots=SnapshotStore(
                self._redis, prefix=s.redis_key_prefix, ttl_seconds=s.snapshot_ttl_seconds
            ),
            planner=planner,
            send_reply=self._delivery.request,
            side_channels=self._side_channels,
            activations=self.activations,
        )
        self._spawn(self._passivation_loop())
        self._spawn(self._read_receipt_loop())
        self._spawn(self._replay_unprocessed())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _replay_unprocessed(self) -> None:
        after_id, replayed = 0, 0
        while True:
            async with self._pool.acquire() as conn:
                page = await inbox.unprocessed(conn, after_id=after_id, limit=1000)
            if not page:
                break
            after_id = page[-1].message_id
            mine = [
                i for i in page if shard_for(i.customer_phone, self._shard_count) == self._index
            ]
            self._post(mine)
            replayed += len(mine)
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
            if side.media_fetches:
                actor.fetch_media.remote(side.take_media_fetches())

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
        """Take a micro-batch from the router; return how many were queued."""
        await self._ensure_started()
        return self._post(batch)

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
        """Wait until every mailbox is empty (tests and clean shutdown)."""
        for conv in list(self._conversations.values()):
            await conv.idle()

    async def stats(self) -> dict[str, Any]:
        return {
            "shard": self._index,
            "pid": os.getpid(),
            "active_conversations": len(self._conversations),
            "queued": sum(c.queued for c in self._conversations.values()),
            "activations": dict(self.activations),
        }

    # -- hosting -------------------------------------------------------------------

    def _post(self, items: list[InboxItem]) -> int:
        for item in sorted(items, key=lambda i: i.message_id):
            key = (item.business_number, item.customer_phone)
            conv = self._conversations.get(key)
            if conv is None:
                conv = VirtualConversation(item.business_number, item.customer_phone, self._ctx)
                self._conversations[key] = conv
            conv.post(item)
        return len(items)


def _idle(conv: VirtualConversation, now: float, max_idle_seconds: float) -> bool:
    return not conv.busy and not conv.queued and now - conv.last_active >= max_idle_seconds
