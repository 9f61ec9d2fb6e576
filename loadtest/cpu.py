"""CPU time of the service: its process and every descendant, Ray's workers and daemons too.

Postgres, Redis and the load generator are not descendants of `serve`, so they are not
counted. A process that exits inside the window loses its last samples; Ray's workers live
for the whole run, so the error is small and errs low only by a process's final moments.
"""

from __future__ import annotations

import psutil


class TreeCpu:
    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._start: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        times: dict[int, float] = {}
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return times
        for process in processes:
            try:
                cpu = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            # Children that were waited for fold into their parent's children_* times.
            times[process.pid] = cpu.user + cpu.system
        return times

    def start(self) -> None:
        self._start = self._sample()

    def seconds_since_start(self) -> float:
        """CPU seconds the tree used since start(); new processes count from zero."""
        now = self._sample()
        return sum(max(0.0, t - self._start.get(pid, 0.0)) for pid, t in now.items())

    def process_count(self) -> int:
        return len(self._sample())
