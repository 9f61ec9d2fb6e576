"""Resident memory of the service's process tree (Ray's workers and daemons included),
sampled through the run, so a report shows whether memory stays flat under load.

The figure is the sum of each process's RSS: pages shared between processes (libraries,
Ray's object store) count once per process, so it errs high, never low.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import psutil

from loadtest.cpu import process_kind

MB = 1024 * 1024


class TreeMemory:
    def __init__(self, pid: int, every: float = 2.0) -> None:
        self._root = psutil.Process(pid)
        self._every = every
        self.samples: list[tuple[float, int]] = []  # (monotonic time, bytes)
        # The first and the latest sample by process kind, to tell which one grows.
        self.first_by_kind: dict[str, int] = {}
        self.last_by_kind: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def _rss(self) -> int | None:
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        total = 0
        by_kind: dict[str, int] = {}
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                rss = process.memory_info().rss
                total += rss
                kind = process_kind(process)
                by_kind[kind] = by_kind.get(kind, 0) + rss
        if not self.first_by_kind:
            self.first_by_kind = by_kind
        self.last_by_kind = by_kind
        return total

    async def _loop(self) -> None:
        while True:
            # A few hundred processes at most: cheap enough to read on the loop.
            rss = self._rss()
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            await asyncio.sleep(self._every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> dict[str, Any]:
        """First, peak and last sample, the growth from the first to the last third, and a
        series of at most 300 points (seconds from the first sample, MB) to see the shape."""
        if not self.samples:
            return {"start_mb": None, "peak_mb": None, "end_mb": None, "growth_mb": None}
        values = [v for _, v in self.samples]
        third = max(1, len(values) // 3)
        growth = sum(values[-third:]) / third - sum(values[:third]) / third
        return {
            "start_mb": round(values[0] / MB, 1),
            "peak_mb": round(max(values) / MB, 1),
            "end_mb": round(values[-1] / MB, 1),
            "growth_mb": round(growth / MB, 1),
            "by_process_mb": {
                kind: [round(self.first_by_kind.get(kind, 0) / MB), round(rss / MB)]
                for kind, rss in sorted(self.last_by_kind.items(), key=lambda kv: -kv[1])
            },
            "series": [
                (round(t - self.samples[0][0]), round(v / MB))
                for t, v in self.samples[:: max(1, len(self.samples) // 300)]
            ],
        }
