"""The operator's live settings, as every actor reads them: one watcher, one parser.

Operators edit settings through the REST API; Postgres holds them and each write bumps a
Redis counter (store.app_settings). A watcher checks that counter at most once every
`refresh_seconds` and reloads the table only when it moved, so a reader pays for one
GET now and then, never for a query per message. Values are read through
`config.operator_settings.parse_stored`, the parser the API validates with, so a reader
never sees a value the API would refuse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis

from config.operator_settings import Faq, Models, SystemPrompt, WindowTemplate, parse_stored
from store import app_settings

S = TypeVar("S")


@dataclass(frozen=True)
class LiveSettings:
    """One consistent reading of the operator settings."""

    version: int = -1
    stored: Mapping[str, Any] = field(default_factory=dict)

    def shape(self, key: str, kind: type[S]) -> S | None:
        """The stored value of `key` as its model, or None when unset or no longer valid."""
        if key not in self.stored:
            return None
        parsed = parse_stored(key, self.stored[key])
        return parsed if isinstance(parsed, kind) else None

    @property
    def system_prompt(self) -> str | None:
        prompt = self.shape("system_prompt", SystemPrompt)
        return prompt.value if prompt is not None else None

    @property
    def models(self) -> Models | None:
        return self.shape("models", Models)

    @property
    def faq(self) -> Faq | None:
        return self.shape("faq", Faq)

    @property
    def window_template(self) -> WindowTemplate | None:
        return self.shape("window_template", WindowTemplate)

    def raw(self, key: str) -> Any:
        """A value with a schema of its own (the flows document), unparsed."""
        return self.stored.get(key)


class SettingsWatcher:
    def __init__(
        self, db: asyncpg.Pool, redis: Redis, *, prefix: str, refresh_seconds: float = 1.0
    ) -> None:
        self._db = db
        self._redis = redis
        self._prefix = prefix
        self._refresh = refresh_seconds
        self._checked_at = float("-inf")
        self._current = LiveSettings()
        self._lock = asyncio.Lock()

    async def current(self) -> LiveSettings:
        """The settings as of at most `refresh_seconds` ago."""
        if time.monotonic() - self._checked_at < self._refresh:
            return self._current
        async with self._lock:
            # Many conversations ask at once after a quiet spell: one of them reloads.
            if time.monotonic() - self._checked_at < self._refresh:
                return self._current
            version = await app_settings.version(self._redis, self._prefix)
            if version != self._current.version:
                async with self._db.acquire() as conn:
                    stored = await app_settings.load_all(conn)
                self._current = LiveSettings(version, stored)
            self._checked_at = time.monotonic()
        return self._current
