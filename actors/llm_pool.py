"""LLMPool: the Ray actor that turns conversation turns into replies.

Shards send it batches; it answers each request as soon as that one is ready
(a streaming generator), so one slow completion never holds back the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from actors.llm_clients import POLITE_FAILURE, ChatClient, make_client
from actors.messages import LLMRequest, LLMResult
from config import Settings
from config.logs import configure_logging


class LLMPool:
    def __init__(self, settings: Settings) -> None:
        configure_logging(settings.log_level)
        self._settings = settings
        self._client: ChatClient | None = None

    def _chat(self) -> ChatClient:
        if self._client is None:
            self._client = make_client(self._settings)
        return self._client

    async def ping(self) -> str:
        return "ok"

    async def complete(self, batch: list[LLMRequest]) -> AsyncIterator[LLMResult]:
        client = self._chat()
        tasks = [asyncio.ensure_future(self._one(client, r)) for r in batch]
        for next_done in asyncio.as_completed(tasks):
            yield await next_done

    async def _one(self, client: ChatClient, request: LLMRequest) -> LLMResult:
        deadline = self._settings.llm_timeout_seconds * (len(self._settings.models) + 1)
        try:
            return await asyncio.wait_for(client.reply(request), timeout=deadline)
        except Exception as exc:
            return LLMResult(request.request_id, POLITE_FAILURE, ok=False, error=repr(exc))
