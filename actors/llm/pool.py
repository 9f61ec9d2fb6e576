"""LLMPool: the actor that turns conversation turns into replies.

Shards send it batches; it answers each request as soon as that one is ready (a
streaming generator), so one slow completion never holds back the rest. It reloads
the operator-edited prompt, models and FAQ when the settings watcher sees them change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from actors.batching import ready_chunks
from actors.llm.chat import POLITE_FAILURE, ChatClient
from actors.llm.context import LLMProfile
from actors.llm.metrics import LLMMetrics
from actors.llm.offline import OfflineResponder
from actors.llm.openrouter import OpenRouterClient
from actors.llm.ratelimit import ClusterRateLimiter
from actors.wire import LLMRequest, LLMResult
from config import Settings
from config.logs import configure_logging
from store.db import create_pool
from store.settings_watch import SettingsWatcher


class LLMPool:
    def __init__(self, settings: Settings, database_url: str, redis_url: str) -> None:
        configure_logging(settings.log_level)
        self._settings = settings
        self._database_url = database_url
        self._redis_url = redis_url
        self._lock = asyncio.Lock()
        self._started = False
        self._version = -1
        self.metrics = LLMMetrics()
        self._redis: Redis
        self._db: asyncpg.Pool
        self._watcher: SettingsWatcher
        self._client: ChatClient
        self._profile: LLMProfile

    async def _ready(self) -> None:
        if self._started:
            return
        async with self._lock:
            if self._started:
                return
            s = self._settings
            self._redis = Redis.from_url(self._redis_url)
            self._db = await create_pool(self._database_url, min_size=1, max_size=2)
            self._watcher = SettingsWatcher(
                self._db,
                self._redis,
                prefix=s.redis_key_prefix,
                refresh_seconds=s.settings_refresh_seconds,
            )
            if s.uses_offline_responder:
                self._client = OfflineResponder()
            else:
                limiter = ClusterRateLimiter(
                    self._redis,
                    prefix=s.redis_key_prefix,
                    requests_per_minute=s.llm_requests_per_minute,
                    tokens_per_minute=s.llm_tokens_per_minute,
                    burst_seconds=s.llm_rate_burst_seconds,
                    max_wait=s.llm_rate_max_wait_seconds,
                )
                self._client = OpenRouterClient(s, limiter, self.metrics)
            self._profile = LLMProfile.from_settings(s)
            self._started = True
        await self.profile()

    async def profile(self) -> LLMProfile:
        """The current profile; operator edits show up within `settings_refresh_seconds`."""
        live = await self._watcher.current()
        if live.version != self._version:
            self._profile = LLMProfile.from_settings(self._settings, live)
            self._version = live.version
        return self._profile

    async def ping(self) -> str:
        await self._ready()
        return "ok"

    async def complete(self, batch: list[LLMRequest]) -> AsyncIterator[list[LLMResult]]:
        await self._ready()
        profile = await self.profile()
        tasks = [asyncio.ensure_future(self._one(r, profile)) for r in batch]
        async for chunk in ready_chunks(tasks):
            yield chunk

    async def _one(self, request: LLMRequest, profile: LLMProfile) -> LLMResult:
        # The client keeps its own deadline; this is the backstop that never lets a reply hang.
        backstop = self._settings.llm_reply_deadline_seconds + 5
        # Each request runs in its own task, so its log lines carry its own request id.
        structlog.contextvars.bind_contextvars(
            request_id=request.trace, message_id=request.request_id
        )
        try:
            return await asyncio.wait_for(self._client.reply(request, profile), timeout=backstop)
        except Exception as exc:
            return LLMResult(request.request_id, POLITE_FAILURE, ok=False, error=repr(exc))

    async def health(self) -> dict[str, Any]:
        await self._ready()
        profile = await self.profile()
        return {
            "mode": "offline" if self._settings.uses_offline_responder else "openrouter",
            "models": list(profile.models),
            "breakers": self._client.breaker_states(),
        }

    async def metric_families(self) -> list[Any]:
        """This actor's Prometheus metric families, for the gateway's /metrics."""
        if self._started:
            self._client.breaker_states()  # refresh the breaker gauges before reading them
        return list(self.metrics.registry.collect())

    async def close(self) -> None:
        if self._started:
            await self._client.close()
            await self._db.close()
            await self._redis.aclose()
