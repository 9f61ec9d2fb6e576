"""The one long-running task a gateway component owns: started once, cancelled on stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)
STOP_TIMEOUT_SECONDS = 5.0


class BackgroundTask:
    def __init__(self, name: str) -> None:
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start `run`, unless it runs already (a task that ended is started again)."""
        if not self.running:
            self._task = asyncio.create_task(run(), name=self._name)

    async def stop(self, wait: float = STOP_TIMEOUT_SECONDS) -> None:
        """Cancel and wait, bounded: a shutdown never hangs on one task.

        redis-py can swallow a cancel that lands while it connects or subscribes; such a
        task is left to finish on its own, and said so.
        """
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:
            log.warning("background_task_did_not_stop", task=self._name, waited_s=wait)
            return
        with contextlib.suppress(asyncio.CancelledError):
            await task
