"""DeliveryActor: sends stored replies through the configured provider and records the result.

Each reply goes part by part through the send ledger (actors.delivery.ledger_send); a
background sweep turns claims whose owner vanished into unknown outcomes.

After each send it publishes a live event (the dashboards refresh the thread) and adds
to the cluster metrics in Redis (deliveries by outcome and code, end-to-end latency).
The replies of a batch share these reports: one read of their facts, one pipeline of
their metrics and one of their events (actors.delivery.batched_ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from functools import cached_property

import asyncpg
import ray
import structlog
from redis.asyncio import Redis

from actors.batching import ready_chunks
from actors.delivery.batched_ledger import Batched
from actors.delivery.ledger_send import LedgerSender
from actors.delivery.media_fetch import MediaFetcher
from actors.delivery.pacing import SendPacer
from actors.delivery.providers import Provider, make_provider
from actors.delivery.providers.errors import ReEngagementRequired
from actors.delivery.window_policy import WindowTemplate
from actors.wire import DeliveryRequest, DeliveryResult
from config import Settings
from config.logs import configure_logging
from config.vocabulary import MessageStatus
from store import cluster_metrics as cm
from store import live_events, send_ledger, webhook_lag
from store.db import create_pool
from store.delivery_facts import reply_facts_many
from store.settings_watch import SettingsWatcher

log = structlog.get_logger(__name__)

# A part's call budget is at least this, whatever the per-request timeout.
MIN_CALL_SECONDS = 30.0
# The status webhooks' lag is read from Redis at most this often.
LAG_READ_SECONDS = 1.0


class DeliveryActor:
    def __init__(
        self,
        settings: Settings,
        database_url: str,
        sandbox_base_url: str | None = None,
        redis_url: str | None = None,
    ) -> None:
        configure_logging(settings.log_level)
        self._settings = settings
        self._database_url = database_url
        self._sandbox_base_url = sandbox_base_url
        self._pool: asyncpg.Pool | None = None
        self._provider: Provider | None = None
        self._watcher: SettingsWatcher | None = None
        # The embedded Redis has no REDIS_URL setting, so the resolved URL is passed in.
        url = redis_url or settings.redis_url
        self._redis = Redis.from_url(url) if url else None
        self._pacer = (
            SendPacer(
                self._redis,
                prefix=settings.redis_key_prefix,
                per_second=(
                    settings.msg91_requests_per_minute / 60
                    if settings.uses_msg91
                    else settings.delivery_messages_per_second
                ),
                pair_interval=settings.pair_interval_seconds,
                pair_burst=settings.pair_burst,
                max_wait=settings.pacing_max_wait_seconds,
            )
            if self._redis is not None
            else None
        )
        self._lock = asyncio.Lock()
        self._sender: LedgerSender | None = None
        self._sweeper: asyncio.Future[None] | None = None
        self._wait = settings.unknown_send_wait_seconds
        self._wait_read_at = -LAG_READ_SECONDS
        self._reports: Batched[DeliveryResult, None] | None = None

    async def _ready(self) -> tuple[asyncpg.Pool, Provider]:
        async with self._lock:
            if self._pool is None:
                self._pool = await create_pool(self._database_url, min_size=1, max_size=10)
                if self._redis is not None:
                    self._watcher = SettingsWatcher(
                        self._pool,
                        self._redis,
                        prefix=self._settings.redis_key_prefix,
                        refresh_seconds=self._settings.settings_refresh_seconds,
                    )
            if self._provider is None:
                self._provider = make_provider(
                    self._settings, sandbox_base_url=self._sandbox_base_url
                )
        return self._pool, self._provider

    async def ping(self) -> str:
        await self._ready()
        return "ok"

    async def mark_read(self, receipts: list[tuple[str, str]]) -> int:
        """Mark inbound messages read: (business number, provider message id) pairs."""
        _, provider = await self._ready()
        results = await asyncio.gather(
            *(provider.mark_read(number, wamid) for number, wamid in receipts),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            # Read ticks are a courtesy: a failure is logged, never retried or surfaced.
            log.info("mark_read_failed", count=len(failed), error=repr(failed[0])[:200])
        return len(receipts) - len(failed)

    @cached_property
    def _media(self) -> MediaFetcher:
        # Created on first use; one semaphore for every fetch_media call on this actor.
        s = self._settings
        return MediaFetcher(concurrency=s.media_fetch_concurrency, max_bytes=s.media_max_bytes)

    async def fetch_media(self, items: list[tuple[int, str]]) -> int:
        """Download customers' media, (inbound message id, media id) pairs, into Postgres."""
        pool, provider = await self._ready()
        return await self._media.fetch(pool, provider, items)

    async def send(self, batch: list[DeliveryRequest]) -> AsyncIterator[list[DeliveryResult]]:
        pool, provider = await self._ready()
        tasks = [asyncio.ensure_future(self._one(pool, provider, r)) for r in batch]
        async for chunk in ready_chunks(tasks):
            yield chunk

    async def _one(
        self, pool: asyncpg.Pool, provider: Provider, request: DeliveryRequest
    ) -> DeliveryResult:
        structlog.contextvars.bind_contextvars(
            request_id=request.trace, outbound_id=request.request_id
        )
        try:
            result = await self._sender_for(pool, provider).deliver(request)
        except Exception as exc:
            # A database blip, say: the ledger holds the state, and the conversation tries
            # again. One reply's trouble never costs the other replies of its batch.
            log.warning("delivery_raised", outbound_id=request.request_id, error=repr(exc))
            return DeliveryResult(
                request.request_id, ok=False, error_title=repr(exc)[:200], retryable=True
            )
        try:
            await self._report(pool, result)
        except Exception as exc:
            # Reporting is for screens and graphs; the send itself has been recorded.
            log.debug("delivery_report_failed", error=repr(exc))
        return result

    def _sender_for(self, pool: asyncpg.Pool, provider: Provider) -> LedgerSender:
        if self._sender is None:
            s = self._settings
            self._sender = LedgerSender(
                pool,
                provider,
                self._pacer,
                self._window_template,
                owner=self._owner,
                # The provider's deadline for one part, its retries included.
                call_seconds=max(3 * s.delivery_timeout_seconds, MIN_CALL_SECONDS),
                unknown_wait_seconds=s.unknown_send_wait_seconds,
                unknown_wait=self._unknown_wait,
            )
            self._sweeper = asyncio.ensure_future(self._sweep_leases(pool, self._sender))
        return self._sender

    @cached_property
    def _lineage(self) -> str | None:
        """The Ray actor this instance embodies ("namespace/name@"), None outside Ray.

        Ray runs at most one live instance of a named actor, so the claims of an earlier
        instance of the same name were left by a process that is gone.
        """
        with contextlib.suppress(Exception):
            context = ray.get_runtime_context()
            name = context.get_actor_name()
            if name:
                return f"{context.namespace}/{name}@"
        return None

    @cached_property
    def _owner(self) -> str:
        return f"{self._lineage or ''}{socket.gethostname()}:{os.getpid()}"

    async def _sweep_leases(self, pool: asyncpg.Pool, sender: LedgerSender) -> None:
        """Claims whose owner vanished become unknown outcomes (DESIGN.md §3), so the next
        try waits for their status webhook instead of finding them held.

        A restarted actor does this at once for its predecessor's claims, rather than
        waiting out their leases (a provider deadline and more).
        """
        if self._lineage is not None:
            with contextlib.suppress(Exception):
                async with pool.acquire() as conn:
                    orphaned = await send_ledger.orphan_claims(conn, self._lineage, self._owner)
                if orphaned:
                    log.info("predecessor_claims_orphaned", messages=len(orphaned))
        while True:
            await asyncio.sleep(max(1.0, sender.lease_seconds / 4))
            try:
                async with pool.acquire() as conn:
                    expired = await send_ledger.expire_leases(conn)
                if expired:
                    log.info("send_leases_expired", messages=len(expired))
            except Exception as exc:
                log.warning("send_lease_sweep_failed", error=repr(exc))

    async def _unknown_wait(self) -> float:
        """The unknown-outcome wait, longer while status webhooks reach the gateways late,
        so that a webhook held up in a backlog (ours, or Meta's retries) is not taken for
        a send Meta never got (store.webhook_lag). Read at most once a second."""
        s = self._settings
        now = time.monotonic()
        if now - self._wait_read_at > LAG_READ_SECONDS:
            self._wait = await webhook_lag.unknown_send_wait(
                self._redis,
                s.redis_key_prefix,
                s.unknown_send_wait_seconds,
                s.unknown_send_wait_max_seconds,
            )
            self._wait_read_at = now
        return self._wait

    async def _window_template(self) -> WindowTemplate | None:
        """The operator's template for a closed window, else the configured one."""
        live = (await self._watcher.current()).window_template if self._watcher else None
        if live is not None:
            return WindowTemplate(live.name, live.language)
        name = self._settings.window_template_name
        return WindowTemplate(name, self._settings.window_template_language) if name else None

    async def _report(self, pool: asyncpg.Pool, result: DeliveryResult) -> None:
        if self._redis is None:
            return
        if self._reports is None:
            self._reports = Batched(lambda results: self._report_batch(pool, results))
        await self._reports(result)

    async def _report_batch(self, pool: asyncpg.Pool, results: list[DeliveryResult]) -> list[None]:
        redis = self._redis
        assert redis is not None
        async with pool.acquire() as conn:
            facts = await reply_facts_many(conn, [r.request_id for r in results])
        prefix = self._settings.redis_key_prefix
        metrics = cm.MetricBatch(prefix)
        events: list[tuple[str, bytes]] = []
        for result in results:
            reply = facts.get(result.request_id)
            if reply is None:
                continue
            status = MessageStatus.SENT if result.ok else MessageStatus.FAILED
            metrics.count(cm.DELIVERIES, status, str(result.error_code or ""))
            metrics.count(cm.STATUS_TRANSITIONS, MessageStatus.SENDING)
            metrics.count(cm.STATUS_TRANSITIONS, status)
            if result.ok and reply.since_inbound_seconds is not None:
                metrics.observe(cm.REPLY_LATENCY, reply.since_inbound_seconds)
            events.append(
                _event(
                    "message.status",
                    conversation_id=reply.conversation_id,
                    message_id=result.request_id,
                    status=status,
                )
            )
            if not result.ok and result.error_code == ReEngagementRequired.meta_code:
                # Said where people look: every gateway's log, and the dashboards.
                events.append(
                    _event(
                        live_events.REPLY_REFUSED,
                        conversation_id=reply.conversation_id,
                        message_id=result.request_id,
                        reason=result.error_title,
                    )
                )
        # Past the read nothing raises: a batch run again reply by reply (Batched does
        # that for a failure) would count its metrics twice.
        try:
            await metrics.send(redis)
        except Exception as exc:
            log.debug("delivery_metrics_not_sent", error=repr(exc))
        if events:
            try:
                await live_events.publish_kinds(redis, prefix, events)
            except Exception as exc:
                log.debug("live_event_not_published", count=len(events), error=repr(exc))
        return [None] * len(results)


def _event(kind: str, **fields: object) -> tuple[str, bytes]:
    return kind, live_events.encode(kind, **fields)
