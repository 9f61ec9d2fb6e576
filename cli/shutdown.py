"""The graceful stop of `serve` (DESIGN.md §3, shutdown), bounded by SHUTDOWN_DRAIN_SECONDS.

In order: webhooks answer 503 (Meta retries them later); the shards take nothing more
and finish the messages in hand, so no actor is killed mid-send; then the router and
the sweeper stop, then the actors, and the caller closes the HTTP server last, so a
webhook meets a 503 rather than a refused connection for as long as the drain lasts.
Whatever was still waiting stays unprocessed in the inbox and is replayed at the next
start; a send still in flight when time runs out is left to the send ledger's recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable
from typing import TypeVar

import structlog
from aiohttp import web

from actors.client import ActorClient
from actors.conversation.router import ShardRouter
from config import Settings
from gateway.draining import DRAINING
from gateway.sweeper import InboxSweeper

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.05
T = TypeVar("T")


class StopSignals:
    """The first SIGTERM or Ctrl-C asks for a graceful stop; a second cuts the drain short."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received)

    def _received(self) -> None:
        (self.force if self.stop.is_set() else self.stop).set()


async def drain(
    settings: Settings,
    app: web.Application,
    actors: ActorClient,
    router: ShardRouter,
    sweeper: InboxSweeper,
    signals: StopSignals,
) -> None:
    started = time.monotonic()
    budget = settings.shutdown_drain_seconds
    app[DRAINING].begin()
    # Actors on an external cluster are shared with other gateways: they keep running,
    # and only what this router holds is handed over before it stops.
    shared = bool(settings.ray_address)
    if shared:
        await _unless_forced(_router_empty(router, budget), signals)
    else:
        outcome = await _unless_forced(actors.close_shards(timeout=budget), signals)
        log.info("shards_closed", shards=outcome)
    await sweeper.stop()
    await router.stop()
    if not shared:
        with contextlib.suppress(Exception):
            actors.kill()
    log.info("drained", seconds=round(time.monotonic() - started, 2))


async def _router_empty(router: ShardRouter, budget: float) -> None:
    for _ in range(int(budget / POLL_SECONDS)):
        if not router.queued():
            return
        await asyncio.sleep(POLL_SECONDS)


async def _unless_forced(work: Awaitable[T], signals: StopSignals) -> T | None:
    task = asyncio.ensure_future(work)
    forced = asyncio.ensure_future(signals.force.wait())
    try:
        await asyncio.wait({task, forced}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None
