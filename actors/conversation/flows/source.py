"""Where the flows come from, reloaded without a restart.

The flows file (FLOWS_PATH) is read again when it changes on disk; an operator's flows
(setting `flows`, YAML text, saved through the settings API) replace it when present.
A flows document that fails validation is logged and the last good one stays in force.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from actors.conversation.flows.engine import FlowEngine
from actors.conversation.flows.loader import FlowFileError, load_flows, parse_flows
from actors.conversation.flows.schema import FlowsFile
from store import app_settings

log = structlog.get_logger(__name__)


class FlowSource:
    def __init__(
        self,
        path: Path | None,
        *,
        db: asyncpg.Pool,
        redis: Redis,
        prefix: str,
        refresh_seconds: float = 1.0,
    ) -> None:
        self._path = path
        self._db = db
        self._redis = redis
        self._prefix = prefix
        self._refresh = refresh_seconds
        self._checked_at = float("-inf")
        self._seen: tuple[float | None, int] | None = None
        self._engine = FlowEngine(FlowsFile())

    async def engine(self) -> FlowEngine:
        now = time.monotonic()
        if now - self._checked_at < self._refresh:
            return self._engine
        self._checked_at = now
        mtime = (
            self._path.stat().st_mtime if self._path is not None and self._path.exists() else None
        )
        version = await app_settings.version(self._redis, self._prefix)
        if (mtime, version) != self._seen:
            self._seen = (mtime, version)
            await self._reload()
        return self._engine

    async def _reload(self) -> None:
        async with self._db.acquire() as conn:
            override: Any = (await app_settings.load_all(conn)).get("flows")
        try:
            if isinstance(override, str) and override.strip():
                flows = parse_flows(override, "settings:flows")
            elif isinstance(override, dict):
                flows = FlowsFile.model_validate(override)
            elif self._path is not None and self._path.exists():
                flows = load_flows(self._path)
            else:
                flows = FlowsFile()
        except (FlowFileError, ValueError) as exc:
            log.error("flows_invalid_kept_previous", error=str(exc)[:1000])
            return
        self._engine = FlowEngine(flows)
        log.info("flows_loaded", flows=len(flows.flows))
