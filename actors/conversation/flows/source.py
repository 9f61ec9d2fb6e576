"""Where the flows come from, reloaded without a restart.

The flows file (FLOWS_PATH) is read again when it changes on disk; an operator's flows
(setting `flows`, YAML text, saved through the settings API and read through the
shared settings watcher) replace it when present. The flows document has a schema of its
own (flows/schema.py), so it is taken raw and validated here. A flows document that
fails validation is logged and the last good one stays in force.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import structlog

from actors.conversation.flows.engine import FlowEngine
from actors.conversation.flows.loader import FlowFileError, load_flows, parse_flows
from actors.conversation.flows.schema import FlowsFile
from store.settings_watch import SettingsWatcher

log = structlog.get_logger(__name__)


class FlowSource:
    def __init__(
        self, path: Path | None, settings: SettingsWatcher, *, refresh_seconds: float = 1.0
    ) -> None:
        self._path = path
        self._settings = settings
        # The file's mtime is checked as often as the watcher checks its counter.
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
        live = await self._settings.current()
        if (mtime, live.version) != self._seen:
            self._seen = (mtime, live.version)
            self._reload(live.raw("flows"))
        return self._engine

    def _reload(self, override: Any) -> None:
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
