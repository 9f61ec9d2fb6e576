"""`serve --workers N`: more gateway processes on the same port, sharing one set of actors.

The first process owns Ray and the actors, as a plain `serve` does. It starts N - 1 more
gateway processes that attach to its Ray (RAY_ADDRESS) and find the actors by name; the
kernel spreads connections over all of them (SO_REUSEPORT). A worker that dies is started
again. Messages it had stored but not yet routed to a shard are still open in Postgres:
the owner sweeps them at once rather than waiting for the periodic sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

RESTART_PAUSE_SECONDS = 1.0
ATTACH_FLAG = "--attach"  # the hidden `serve` flag a worker runs with


class GatewayWorkers:
    def __init__(
        self,
        count: int,
        env: dict[str, str],
        on_death: Callable[[], Awaitable[object]],
    ) -> None:
        self._count = count
        self._env = env
        self._on_death = on_death
        self._processes: list[subprocess.Popen[bytes]] = []
        self._watcher: asyncio.Task[None] | None = None
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    def start(self) -> None:
        self._processes = [self._spawn() for _ in range(self._count)]
        self._watcher = asyncio.create_task(self._watch())

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Output goes where ours goes; the same process group, so Ctrl-C reaches them too.
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", ATTACH_FLAG], env=self._env
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RESTART_PAUSE_SECONDS)
            for i, process in enumerate(self._processes):
                if process.poll() is None:
                    continue
                log.warning("gateway_worker_died", pid=process.pid, code=process.returncode)
                self._processes[i] = self._spawn()
                self.restarts += 1
                try:
                    await self._on_death()
                except Exception as exc:
                    log.warning("gateway_worker_sweep_failed", error=repr(exc))

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded drain
        """SIGTERM every worker (each drains itself), then SIGKILL what is left at `timeout`."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for process in self._processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self._processes:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                await asyncio.to_thread(process.wait, remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.to_thread(process.wait)


def worker_env(
    *, host: str, port: int, ray_address: str, database_url: str, redis_url: str
) -> dict[str, str]:
    """A worker's environment: ours, with the address, servers and Ray this process resolved."""
    env = dict(os.environ)
    env.update(
        HOST=host,
        PORT=str(port),
        RAY_ADDRESS=ray_address,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
    )
    return env
