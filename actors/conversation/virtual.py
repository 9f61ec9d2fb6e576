"""A virtual conversation actor (an Orleans-style grain), hosted inside a shard.

One per customer phone: its own mailbox and state, activated on its first message
(from its Redis snapshot, else from Postgres history) and passivated by the shard when
idle. Its messages are handled one at a time in inbox order; different phones run
concurrently. The mailbox keeps that order in memory, but the guarantee is the order
gate in Postgres (DESIGN.md §3): a message whose conversation has an earlier open
message is not handled; the earlier ones are loaded into the mailbox and go first,
whichever path (live, replay, sweeper, another gateway) brought either.

Handling one message: its work state and the gate, read receipt and media download, one
more counted try, the turn (actors.conversation.turn) committed with the reply's
reservation in one transaction (actors.conversation.turn_plan), which the shard's other
turns committing at that moment share (actors.conversation.batched_commit), delivery,
then the inbox row is marked processed and the turn remembered. A message that fails
its last try is a dead letter (store.dead_letters): the customer gets one holding reply,
or a person is flagged, and it is never tried again unless an operator asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Literal

import structlog

from actors.conversation.context import ConversationContext
from actors.conversation.mailbox import Mailbox
from actors.conversation.turn import trace_of
from actors.conversation.turn_plan import Committed, TurnPlan
from actors.outages import PartUnavailable, is_outage
from actors.wire import Content, DeliveryRequest
from config.logs import mask_phone
from config.vocabulary import MEDIA_TYPES, MessageStatus, ProviderName
from store import cluster_metrics, conversations, dead_letters, inbox, live_events
from store.inbox import WorkState
from store.records import ConversationSnapshot, InboxItem, OutboundRow, Turn

log = structlog.get_logger(__name__)

ActivationSource = Literal["redis", "postgres"]


class DeliveryDeferred(PartUnavailable):
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
        self._unsaved_plan: tuple[int, TurnPlan] | None = None  # (message id, plan)

    # -- the mailbox -----------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def queued(self) -> int:
        return len(self._mailbox)

    @property
    def held(self) -> int:
        """Waiting messages plus the one in hand (the shard's back-pressure bound)."""
        return self._mailbox.held

    def post(self, item: InboxItem) -> None:
        self._mailbox.put(item)
        self.last_active = time.monotonic()
        if not self.busy:
            self._worker = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        # One message at a time: the next starts only when the previous reply was handed over.
        while len(self._mailbox):
            item = self._mailbox.pop()
            try:
                await self._handle_with_retries(item)
            finally:
                self._mailbox.finish()
            self.last_active = time.monotonic()

    async def _handle_with_retries(self, item: InboxItem) -> None:
        # Retrying in place keeps later messages behind this one, so a reply never
        # overtakes an earlier one. A failure of the message itself is counted in
        # Postgres, and the last try makes it a dead letter; an outage of a part
        # (Postgres, Redis, an actor, Meta) spends no try: the message waits for the part.
        settings = self._ctx.settings
        failures = 0
        outage_pause = settings.message_retry_base_seconds
        while True:
            try:
                await self.handle(item)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_outage(exc):
                    log.warning(
                        "message_waits_for_outage", message_id=item.message_id, error=_describe(exc)
                    )
                    # Jittered, so thousands of waiting conversations do not knock together.
                    await asyncio.sleep(outage_pause * random.uniform(0.5, 1.0))
                    outage_pause = min(outage_pause * 2, settings.outage_retry_max_seconds)
                    continue
                failures += 1
                log.exception(
                    "message_handling_failed", message_id=item.message_id, attempt=failures
                )
                with contextlib.suppress(Exception):
                    if await self._dead_letter_if_spent(item, _describe(exc)):
                        return
                if failures >= settings.message_max_attempts:
                    break
                await asyncio.sleep(settings.message_retry_base_seconds * 2 ** (failures - 1))
        # Still open in Postgres (its reply waits to be sent): tried again later.
        log.error("message_handling_gave_up", message_id=item.message_id)

    async def _dead_letter_if_spent(self, item: InboxItem, error: str) -> bool:
        async with self._ctx.pool.acquire() as conn:
            attempts, _ = await inbox.record_failure(conn, item.message_id, error)
        if attempts < self._ctx.settings.message_max_attempts:
            return False
        return await self._dead_letter(item, error)

    async def _dead_letter(self, item: InboxItem, error: str) -> bool:
        """Bury the message; the customer hears once that a person will look (or one is flagged)."""
        ctx = self._ctx
        holding = None
        async with ctx.pool.acquire() as conn, conn.transaction():
            await inbox.lock_conversation(conn, item.conversation_id)
            if not await dead_letters.bury(conn, item.message_id, error):
                return False
            if ctx.settings.dead_letter_action == "flag":
                await conversations.flag_for_human(conn, item.conversation_id, "dead_letter")
            else:
                holding = await dead_letters.insert_holding_reply(
                    conn, item.conversation_id, ctx.settings.delivery_provider
                )
        log.error("message_dead_lettered", message_id=item.message_id, error=error)
        metrics = cluster_metrics.MetricBatch(ctx.settings.redis_key_prefix)
        metrics.count(cluster_metrics.DEAD_LETTERS, ctx.settings.dead_letter_action)
        with contextlib.suppress(Exception):
            await metrics.send(ctx.redis)
            await live_events.publish(
                ctx.redis,
                ctx.settings.redis_key_prefix,
                "message.dead",
                conversation_id=item.conversation_id,
                message_id=item.message_id,
            )
        if holding is not None:
            try:
                await self._deliver(item, holding)
            except Exception:
                # Stored as pending: the dead message is not tried again for its sake.
                log.exception("holding_reply_not_sent", message_id=item.message_id)
        return True

    async def idle(self) -> None:
        """Wait until the mailbox is empty and nothing is in flight."""
        while self.busy and self._worker is not None:
            await asyncio.shield(self._worker)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def close(self) -> int:
        """Finish the message in hand and start no other (shutdown); return how many waited."""
        return self._mailbox.close()

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
        work = await ctx.store.work_state.get(item.message_id)
        if work is None or work.processed:
            return
        if work.blocked_by is not None:
            await self._wait_for_earlier(item)
            return
        self._queue_side_channels(item)
        reply = work.reply
        if reply is None:
            planned = await self._plan_and_reserve(item, work, snapshot)
            if planned is None:
                return  # waits for an earlier message, or is dead
            reply = planned.reply
        if await self._must_send(reply) and reply is not None and reply.text:
            await self._deliver(item, reply)
        await ctx.store.mark_processed.get(item.message_id)
        self._remember(snapshot, item, reply.text if reply is not None else None)
        # The screens' hint and the state, in the pipeline shared with the shard's other
        # conversations finishing now.
        await ctx.store.redis(
            live_events.publish_command(
                ctx.settings.redis_key_prefix,
                "message.processed",
                conversation_id=item.conversation_id,
                message_id=item.message_id,
            ),
            ctx.snapshots.save_command(snapshot),
        )

    async def _wait_for_earlier(self, item: InboxItem) -> None:
        """Put the conversation's earlier open messages ahead of this one, in the mailbox.

        They may not have reached this shard yet (a replay still loading them, a router
        overflow, another gateway's commit); loading them here keeps the order without
        polling. This message stays open in Postgres meanwhile.
        """
        async with self._ctx.pool.acquire() as conn:
            earlier = await inbox.open_before(conn, item.message_id)
        # The shard's bound holds here too: this message leaves our hands, so at least the
        # earliest one fits. What does not fit stays open in Postgres for the sweeper.
        self._mailbox.finish()
        room = self._ctx.room()
        earlier = earlier[: max(1, room)]
        for e in earlier:
            self._mailbox.put(e)
        if len(earlier) < room or not earlier:
            self._mailbox.put(item)
        if not earlier:
            # The earlier one was finished between the two reads: a short pause, not a spin.
            await asyncio.sleep(0.01)

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
    ) -> Committed | None:
        """Plan the turn (the LLM answers first, outside any transaction), then commit it.

        None when the message must wait for an earlier one, or has used up its tries.
        """
        ctx = self._ctx
        plan = self._unsaved_plan
        if plan is None or plan[0] != item.message_id:
            attempts = await ctx.store.begin_attempt.get(item.message_id) or 0
            if attempts > ctx.settings.message_max_attempts:
                # Its tries ran out in earlier lives (crashes, restarts): no new one.
                async with ctx.pool.acquire() as conn:
                    error = await inbox.last_error(conn, item.message_id)
                await self._dead_letter(item, error or f"gave up after {attempts - 1} tries")
                return None
            plan = (item.message_id, await ctx.planner.plan(item, work, snapshot))
        # Kept until committed: a commit lost to an outage is retried with the same plan,
        # so the LLM is not asked (and billed) again nor another try counted.
        self._unsaved_plan = plan
        committed = await ctx.store.commit_turn(item, plan[1])
        self._unsaved_plan = None
        if committed.blocked_by is not None:
            await self._wait_for_earlier(item)
            return None
        return committed

    async def _must_send(self, reply: OutboundRow | None) -> bool:
        # The send ledger decides what of it still goes out (DESIGN.md §3): parts already
        # sent are skipped there, and a send in doubt waits there for its status webhook.
        return (
            reply is not None
            and bool(reply.text)
            and reply.status in (MessageStatus.PENDING, MessageStatus.SENDING)
        )

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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
