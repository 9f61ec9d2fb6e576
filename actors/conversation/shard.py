"""ConversationShard: a Ray actor hosting many virtual conversation actors.

The gateway's router sends it micro-batches of stored inbox items. Each item goes to
its phone's virtual actor (actors.conversation.virtual), which handles it in order:
reply policy, LLM pool (batched), outbound row (unique per inbound message),
delivery (batched), then the inbox row is marked processed.

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
from actors.conversation.flows.source import FlowSource
from actors.conversation.placement import shard_for
from actors.conversation.turn import TurnPlanner, trace_of
from actors.conversation.virtual import VirtualConversation
from actors.wire import DeliveryRequest, DeliveryResult, LLMRequest, LLMResult
from config import Settings
from config.logs import configure_logging, mask_phone
from store import conversations, inbox, live_events, outbound
from store.db import create_pool
from store.records import ConversationSnapshot, InboxItem, Turn
from store.snapshots import SnapshotStore

log = structlog.get_logger(__name__)
MEDIA = frozenset({"image", "audio", "video", "document", "sticker"})


class DeliveryDeferred(RuntimeError):
    """A reply hit a limit or an outage; it stays pending and is sent on a later try."""


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
        self._snapshots: SnapshotStore
        self._llm: StreamBatcher[LLMRequest, LLMResult]
        self._delivery: StreamBatcher[DeliveryRequest, DeliveryResult]
        self._planner: TurnPlanner
        self._delivery_actors: list[Any] = []
        self._read_receipts: list[tuple[str, str]] = []
        self._media_fetches: list[tuple[int, str]] = []
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
        self._snapshots = SnapshotStore(
            self._redis, prefix=s.redis_key_prefix, ttl_seconds=s.snapshot_ttl_seconds
        )
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
        self._planner = TurnPlanner(
            s,
            self._pool,
            AbuseLimit(
                self._redis,
                prefix=s.redis_key_prefix,
                limit=s.abuse_messages_per_window,
                window=s.abuse_window_seconds,
            ),
            self._llm.request,
            FlowSource(
                s.flows_path,
                db=self._pool,
                redis=self._redis,
                prefix=s.redis_key_prefix,
                refresh_seconds=s.settings_refresh_seconds,
            ),
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
            if self._read_receipts:
                batch, self._read_receipts = self._read_receipts, []
                actor.mark_read.remote(batch)
            if self._media_fetches:
                fetches, self._media_fetches = self._media_fetches, []
                actor.fetch_media.remote(fetches)

    def _owns(self, item: InboxItem) -> bool:
        return shard_for(item.customer_phone, self._shard_count) == self._index

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
            key
            for key, conv in self._conversations.items()
            if not conv.busy and not conv.queued and now - conv.last_active >= max_idle_seconds
        ]
        for key in idle:
            conv = self._conversations.pop(key)
            if conv.snapshot is not None:
                await self._snapshots.save(conv.snapshot)
        return len(idle)

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

    # -- the per-message pipeline ----------------------------------------------------

    def _post(self, items: list[InboxItem]) -> int:
        for item in sorted(items, key=lambda i: i.message_id):
            key = (item.business_number, item.customer_phone)
            conv = self._conversations.get(key)
            if conv is None:
                conv = VirtualConversation(item.business_number, item.customer_phone, self._handle)
                self._conversations[key] = conv
            conv.post(item)
        return len(items)

    async def _activate(self, conv: VirtualConversation, item: InboxItem) -> ConversationSnapshot:
        if conv.snapshot is not None:
            return conv.snapshot
        snapshot = await self._snapshots.load(conv.business_number, conv.customer_phone)
        if snapshot is not None:
            conv.activated_from = "redis"
        else:
            async with self._pool.acquire() as conn:
                history = await conversations.recent_turns(
                    conn,
                    item.conversation_id,
                    self._settings.history_turns,
                    before_id=item.message_id,
                )
            snapshot = ConversationSnapshot(
                conversation_id=item.conversation_id,
                business_number=conv.business_number,
                customer_phone=conv.customer_phone,
                history=history,
            )
            conv.activated_from = "postgres"
        self.activations[conv.activated_from] += 1
        conv.snapshot = snapshot
        return snapshot

    async def _handle(self, conv: VirtualConversation, item: InboxItem) -> None:
        structlog.contextvars.bind_contextvars(
            request_id=trace_of(item), message_id=item.message_id
        )
        snapshot = await self._activate(conv, item)
        async with self._pool.acquire() as conn:
            work = await inbox.work_state(conn, item.message_id)
        if work is None or work.processed:
            return
        if item.provider == "whatsapp_cloud" and len(self._read_receipts) < 10_000:
            if self._settings.whatsapp_mark_read:
                self._read_receipts.append((item.business_number, item.provider_message_id))
            media_id = (item.payload.get(item.type) or {}).get("id") if item.type in MEDIA else None
            if media_id and self._settings.media_download:
                self._media_fetches.append((item.message_id, str(media_id)))
        reply = work.reply
        if reply is None:
            new = await self._planner.plan(item, work, snapshot)
            if new is not None:
                async with self._pool.acquire() as conn:
                    reply = await outbound.reserve_reply(conn, new)
        must_send = bool(reply and reply.status in ("pending", "sending") and reply.text)
        if must_send and reply is not None and reply.status == "sending":
            # A crash lost this send's outcome: Meta may have it already (DESIGN.md §3).
            must_send = reply.provider_message_id is None and not await self._outcome_arrives(
                reply.id
            )
        if must_send and reply is not None and reply.text:
            sent = await self._delivery.request(
                DeliveryRequest(
                    reply.id,
                    item.business_number,
                    item.customer_phone,
                    reply.text,
                    reply.content,
                    trace=trace_of(item),
                    # Newer messages are waiting: quote the one this reply answers, so the
                    # customer sees which question it is about.
                    reply_context=item.provider_message_id if conv.queued else None,
                )
            )
            if not sent.ok and sent.retryable:
                # Still pending; the mailbox retries this message before any later one.
                raise DeliveryDeferred(f"reply {reply.id}: {sent.error_title}")
            if not sent.ok:
                log.warning(
                    "reply_not_delivered", to=mask_phone(item.customer_phone), code=sent.error_code
                )
        async with self._pool.acquire() as conn:
            await inbox.mark_processed(conn, [item.message_id])
        await live_events.publish(
            self._redis,
            self._settings.redis_key_prefix,
            "message.processed",
            conversation_id=item.conversation_id,
            message_id=item.message_id,
        )
        self._remember(snapshot, item, reply.text if reply is not None else None)
        await self._snapshots.save(snapshot)

    async def _outcome_arrives(self, outbound_id: int) -> bool:
        """Wait, bounded, for the status webhook of a send whose outcome a crash lost."""
        while True:
            async with self._pool.acquire() as conn:
                _, wamid, age = await outbound.send_state(conn, outbound_id)
            if wamid is not None:
                return True
            if age >= self._settings.unknown_send_wait_seconds:
                return False
            await asyncio.sleep(min(1.0, self._settings.unknown_send_wait_seconds - age))

    def _remember(self, snapshot: ConversationSnapshot, item: InboxItem, reply: str | None) -> None:
        if item.text:
            snapshot.history.append(Turn("user", item.text))
        if reply:
            snapshot.history.append(Turn("assistant", reply))
        del snapshot.history[: -self._settings.history_turns]
        snapshot.last_message_id = max(snapshot.last_message_id, item.message_id)
