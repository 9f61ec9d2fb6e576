"""DeliveryActor: sends stored replies through the configured provider and records the result.

After each send it publishes a live event (the dashboards refresh the thread) and adds
to the cluster metrics in Redis (deliveries by outcome and code, end-to-end latency).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import cached_property

import asyncpg
import structlog
from redis.asyncio import Redis

from actors.batching import ready_chunks
from actors.delivery.media_fetch import MediaFetcher
from actors.delivery.pacing import PacingTimeout, SendPacer
from actors.delivery.providers import OutboundMessage, Provider, make_provider
from actors.delivery.providers.errors import ReEngagementRequired, SendError
from actors.delivery.window_policy import WindowTemplate, as_template, choose, window_open
from actors.wire import Content, DeliveryRequest, DeliveryResult
from config import Settings
from config.logs import configure_logging, mask_phone
from config.vocabulary import MessageStatus
from store import cluster_metrics as cm
from store import live_events, outbound
from store.db import create_pool
from store.delivery_facts import reply_facts
from store.settings_watch import SettingsWatcher

log = structlog.get_logger(__name__)


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
        async with pool.acquire() as conn:
            last_customer_at = await outbound.mark_sending(conn, request.request_id)
        content = request.content
        now = datetime.now(tz=UTC)
        # The template matters only once the window is closed, by our clock or Meta's.
        template = None if window_open(last_customer_at, now) else await self._window_template()
        allowed = choose(content, last_customer_at, now, template)
        try:
            if allowed is None:
                raise ReEngagementRequired("outside the 24-hour window; no template set")
            if allowed is not content:
                await self._record_template(pool, request.request_id, allowed)
            try:
                wamid = await self._paced_send(provider, request, allowed)
            except ReEngagementRequired:
                # Meta's clock says the window closed (131047): the template goes instead.
                fallback = as_template(template or await self._window_template())
                if fallback is None or allowed.kind == "template":
                    raise
                await self._record_template(pool, request.request_id, fallback)
                wamid = await self._paced_send(provider, request, fallback)
        except (SendError, PacingTimeout) as exc:
            code = exc.code if isinstance(exc, SendError) else None
            title = exc.title if isinstance(exc, SendError) else str(exc)
            retryable = isinstance(exc, PacingTimeout) or (
                isinstance(exc, SendError) and exc.retryable
            )
            log.warning(
                "delivery_failed",
                outbound_id=request.request_id,
                to=mask_phone(request.to),
                code=code,
                title=title,
                retryable=retryable,
                provider=provider.name,
            )
            async with pool.acquire() as conn:
                if retryable:
                    # Limits and outages pass: the conversation tries this reply again later.
                    await outbound.mark_pending(conn, request.request_id)
                else:
                    await outbound.mark_failed(conn, request.request_id, code, title)
            result = DeliveryResult(
                request.request_id,
                ok=False,
                error_code=code,
                error_title=title,
                retryable=retryable,
            )
        else:
            async with pool.acquire() as conn:
                await outbound.mark_sent(conn, request.request_id, wamid)
            result = DeliveryResult(request.request_id, ok=True, provider_message_id=wamid)
        try:
            await self._report(pool, result)
        except Exception as exc:
            # Reporting is for screens and graphs; the send itself has been recorded.
            log.debug("delivery_report_failed", error=repr(exc))
        return result

    async def _paced_send(
        self, provider: Provider, request: DeliveryRequest, content: Content
    ) -> str:
        if self._pacer is not None:
            await self._pacer.wait_turn(request.business_number, request.to)
        message = OutboundMessage(
            business_number=request.business_number,
            to=request.to,
            content=content,
            callback_data=str(request.request_id),
            context_message_id=request.reply_context if content.kind != "template" else None,
        )
        return await provider.send(message)

    async def _window_template(self) -> WindowTemplate | None:
        """The operator's template for a closed window, else the configured one."""
        live = (await self._watcher.current()).window_template if self._watcher else None
        if live is not None:
            return WindowTemplate(live.name, live.language)
        name = self._settings.window_template_name
        return WindowTemplate(name, self._settings.window_template_language) if name else None

    async def _record_template(self, pool: asyncpg.Pool, outbound_id: int, sent: Content) -> None:
        # The dashboard and the API show that a template went instead of the text.
        async with pool.acquire() as conn:
            await outbound.record_template(conn, outbound_id, sent.to_payload(), sent.text)

    async def _report(self, pool: asyncpg.Pool, result: DeliveryResult) -> None:
        if self._redis is None:
            return
        async with pool.acquire() as conn:
            facts = await reply_facts(conn, result.request_id)
        if facts is None:
            return
        status = MessageStatus.SENT if result.ok else MessageStatus.FAILED
        prefix = self._settings.redis_key_prefix
        batch = cm.MetricBatch(prefix)
        batch.count(cm.DELIVERIES, status, str(result.error_code or ""))
        batch.count(cm.STATUS_TRANSITIONS, MessageStatus.SENDING)
        batch.count(cm.STATUS_TRANSITIONS, status)
        if result.ok and facts.since_inbound_seconds is not None:
            batch.observe(cm.REPLY_LATENCY, facts.since_inbound_seconds)
        await batch.send(self._redis)
        await live_events.publish(
            self._redis,
            prefix,
            "message.status",
            conversation_id=facts.conversation_id,
            message_id=result.request_id,
            status=status,
        )
