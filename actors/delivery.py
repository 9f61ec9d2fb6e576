"""DeliveryActor: sends stored replies through the configured provider and records the result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import structlog

from actors.messages import DeliveryRequest, DeliveryResult
from actors.providers import Provider, SendError, TextMessage, make_provider
from config import Settings
from config.logs import configure_logging, mask_phone
from store import outbound
from store.db import create_pool

log = structlog.get_logger(__name__)


class DeliveryActor:
    def __init__(
        self, settings: Settings, database_url: str, sandbox_base_url: str | None = None
    ) -> None:
        configure_logging(settings.log_level)
        self._settings = settings
        self._database_url = database_url
        self._sandbox_base_url = sandbox_base_url
        self._pool: asyncpg.Pool | None = None
        self._provider: Provider | None = None
        self._lock = asyncio.Lock()

    async def _ready(self) -> tuple[asyncpg.Pool, Provider]:
        async with self._lock:
            if self._pool is None:
                self._pool = await create_pool(self._database_url, min_size=1, max_size=10)
            if self._provider is None:
                self._provider = make_provider(
                    self._settings, sandbox_base_url=self._sandbox_base_url
                )
        return self._pool, self._provider

    async def ping(self) -> str:
        await self._ready()
        return "ok"

    async def send(self, batch: list[DeliveryRequest]) -> AsyncIterator[DeliveryResult]:
        pool, provider = await self._ready()
        tasks = [asyncio.ensure_future(self._one(pool, provider, r)) for r in batch]
        for next_done in asyncio.as_completed(tasks):
            yield await next_done

    async def _one(
        self, pool: asyncpg.Pool, provider: Provider, request: DeliveryRequest
    ) -> DeliveryResult:
        async with pool.acquire() as conn:
            await outbound.mark_sending(conn, request.request_id)
        message = TextMessage(
            business_number=request.business_number,
            to=request.to,
            text=request.text,
            callback_data=str(request.request_id),
            content=request.content,
        )
        try:
            wamid = await provider.send_text(message)
        except SendError as exc:
            log.warning(
                "delivery_failed", to=mask_phone(request.to), code=exc.code, title=exc.title
            )
            async with pool.acquire() as conn:
                await outbound.mark_failed(conn, request.request_id, exc.code, exc.title)
            return DeliveryResult(
                request.request_id, ok=False, error_code=exc.code, error_title=exc.title
            )
        async with pool.acquire() as conn:
            await outbound.mark_sent(conn, request.request_id, wamid)
        return DeliveryResult(request.request_id, ok=True, provider_message_id=wamid)
