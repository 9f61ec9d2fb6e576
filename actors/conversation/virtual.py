"""A virtual conversation actor (an Orleans-style grain), hosted inside a shard.

One per customer phone: its own mailbox and state, activated on its first message
(from its Redis snapshot, else from Postgres history) and passivated by the shard when
idle. Its messages are handled strictly one at a time in inbox order; different phones
run concurrently. Ray's async actors keep no call order, so this mailbox is where
per-phone ordering comes from (DESIGN.md §2).

Handling one message: its work state, read receipt and media download, the turn
(actors.conversation.turn), the reply's reservation (unique per inbound message),
delivery, then the inbox row is marked processed and the turn remembered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import structlog

from actors.conversation.context import ConversationContext
from actors.conversation.mailbox import Mailbox
from actors.conversation.turn import trace_of
from actors.wire import Content, DeliveryRequest
from config.logs import mask_phone
from config.vocabulary import MEDIA_TYPES, MessageStatus, ProviderName
from store import conversations, inbox, live_events, outbound
from store.inbox import WorkState
from store.records import ConversationSnapshot, InboxItem, OutboundRow, Turn

log = structlog.get_logger(__name__)

RETRY_ATTEMPTS = 5
RETRY_BASE_DELAY = 0.5

ActivationSource = Literal["redis", "postgres"]


class DeliveryDeferred(RuntimeError):
    """A reply hit a limit or an outage; it stays pending and is sent on a later try."""


class VirtualConversation:
    def __init__(
        self, business_number: str, customer_phone: str, context: ConversationContext
    ) -> None:
        self.business_number = business_number
        self.customer_phone = customer_phone
        self.snapshot: ConversationSnapshot | None = None  # None until activated
        self.activated_from: ActivationSource | None = None
        self.last_active = time.monotonic()
        self._ctx = context
        self._mailbox = Mailbox()
        self._worker: asyncio.Task[None] | None = None

    # -- the mailbox -----------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def queued(self) -> int:
        return len(self._mailbox)

    def post(self, item: InboxItem) -> None:
        self._mailbox.put(item)
        self.last_active = time.monotonic()
        if not self.busy:
            self._worker = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        # One message at a time: the next starts only when the previous reply was handed over.
        while len(self._mailbox):
            item = self._mailbox.pop()
            await self._handle_with_retries(item)
            self.last_active = time.monotonic()

    async def _handle_with_retries(self, item: InboxItem) -> None:
        # Retrying in place keeps later messages behind this one, so a reply never
        # overtakes an earlier one while, say, Postgres blips.
        for attempt in range(RETRY_ATTEMPTS):
            try:
                await self.handle(item)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "message_handling_failed", message_id=item.message_id, attempt=attempt + 1
                )
                await asyncio.sleep(RETRY_BASE_DELAY * 2**attempt)
        # Still unprocessed in Postgres: the inbox sweeper replays it later.
        log.error("message_handling_gave_up", message_id=item.message_id)

    async def idle(self) -> None:
        """Wait until the mailbox is empty and nothing is in flight."""
        while self.busy and self._worker is not None:
            await asyncio.shield(self._worker)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    # -- activation ------------------------------------------------------------------

    async def activate(self, item: InboxItem) -> ConversationSnapshot:
        """This conversation's state: in memory, else its Redis snapshot, else Postgres."""
        if self.snapshot is not None:
            return self.snapshot
        ctx = self._ctx
        snapshot = await ctx.snapshots.load(self.business_number, self.customer_phone)
        if snapshot is not None:
            self.activated_from = "redis"
        else:
            async with ctx.pool.acquire() as conn:
                history = await conversations.recent_turns(
                    conn,
                    item.conversation_id,
                    ctx.settings.history_turns,
                    before_id=item.message_id,
                )
            snapshot = ConversationSnapshot(
                conversation_id=item.conversation_id,
                business_number=self.business_number,
                customer_phone=self.customer_phone,
                history=history,
            )
            self.activated_from = "postgres"
        ctx.activations[self.activated_from] += 1
        self.snapshot = snapshot
        return snapshot

    async def passivate(self) -> None:
        """Keep the state in Redis (with its TTL) before the shard forgets this conversation."""
        if self.snapshot is not None:
            await self._ctx.snapshots.save(self.snapshot)

    # -- one message -----------------------------------------------------------------

    async def handle(self, item: InboxItem) -> None:
        structlog.contextvars.bind_contextvars(
            request_id=trace_of(item), message_id=item.message_id
        )
        ctx = self._ctx
        snapshot = await self.activate(item)
        async with ctx.pool.acquire() as conn:
            work = await inbox.work_state(conn, item.message_id)
        if work is None or work.processed:
            return
        self._queue_side_channels(item)
        reply = work.reply
        if reply is None:
            reply = await self._plan_and_reserve(item, work, snapshot)
        if await self._must_send(reply) and reply is not None and reply.text:
            await self._deliver(item, reply)
        async with ctx.pool.acquire() as conn:
            await inbox.mark_processed(conn, [item.message_id])
        await live_events.publish(
            ctx.redis,
            ctx.settings.redis_key_prefix,
            "message.processed",
            conversation_id=item.conversation_id,
            message_id=item.message_id,
        )
        self._remember(snapshot, item, reply.text if reply is not None else None)
        await ctx.snapshots.save(snapshot)

    def _queue_side_channels(self, item: InboxItem) -> None:
        side, settings = self._ctx.side_channels, self._ctx.settings
        if item.provider != ProviderName.WHATSAPP_CLOUD or not side.has_room:
            return
        if settings.whatsapp_mark_read:
            side.read_receipts.append((item.business_number, item.provider_message_id))
        media_id = (
            (item.payload.get(item.type) or {}).get("id") if item.type in MEDIA_TYPES else None
        )
        if media_id and settings.media_download:
            side.media_fetches.append((item.message_id, str(media_id)))

    async def _plan_and_reserve(
        self, item: InboxItem, work: WorkState, snapshot: ConversationSnapshot
    ) -> OutboundRow | None:
        new = await self._ctx.planner.plan(item, work, snapshot)
        if new is None:
            return None
        async with self._ctx.pool.acquire() as conn:
            return await outbound.reserve_reply(conn, new)

    async def _must_send(self, reply: OutboundRow | None) -> bool:
        if reply is None or not reply.text:
            return False
        if reply.status == MessageStatus.PENDING:
            return True
        if reply.status != MessageStatus.SENDING:
            return False
        # A crash lost this send's outcome: Meta may have it already (DESIGN.md §3).
        return reply.provider_message_id is None and not await self._outcome_arrives(reply.id)

    async def _outcome_arrives(self, outbound_id: int) -> bool:
        """Wait, bounded, for the status webhook of a send whose outcome a crash lost."""
        wait = self._ctx.settings.unknown_send_wait_seconds
        while True:
            async with self._ctx.pool.acquire() as conn:
                _, wamid, age = await outbound.send_state(conn, outbound_id)
            if wamid is not None:
                return True
            if age >= wait:
                return False
            await asyncio.sleep(min(1.0, wait - age))

    async def _deliver(self, item: InboxItem, reply: OutboundRow) -> None:
        assert reply.text is not None
        sent = await self._ctx.send_reply(
            DeliveryRequest(
                reply.id,
                item.business_number,
                item.customer_phone,
                Content.from_payload(reply.content, reply.text),
                trace=trace_of(item),
                # Newer messages are waiting: quote the one this reply answers, so the
                # customer sees which question it is about.
                reply_context=item.provider_message_id if self.queued else None,
            )
        )
        if not sent.ok and sent.retryable:
            # Still pending; the mailbox retries this message before any later one.
            raise DeliveryDeferred(f"reply {reply.id}: {sent.error_title}")
        if not sent.ok:
            log.warning(
                "reply_not_delivered", to=mask_phone(item.customer_phone), code=sent.error_code
            )

    def _remember(self, snapshot: ConversationSnapshot, item: InboxItem, reply: str | None) -> None:
        if item.text:
            snapshot.history.append(Turn("user", item.text))
        if reply:
            snapshot.history.append(Turn("assistant", reply))
        del snapshot.history[: -self._ctx.settings.history_turns]
        snapshot.last_message_id = max(snapshot.last_message_id, item.message_id)
