"""Live events fanned out to the dashboards: one Redis subscription per gateway process,
one bounded queue per connected browser (Server-Sent Events).

The actors publish from other processes and nodes (store.live_events); each gateway
relays what it hears to its own clients. A client too slow to keep up loses events and
is told to resync, rather than letting the gateway's memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis

from gateway.background import BackgroundTask
from store import live_events, webhook_lag

log = structlog.get_logger(__name__)

RESYNC = b'{"type":"resync"}'
# Put in every client queue at shutdown: the stream ends instead of holding the server.
CLOSE = b""


# Cheaper than parsing every event: only refusals are opened, to be logged.
_REFUSED_MARK = orjson.dumps(live_events.REPLY_REFUSED)


def _log_refusal(data: bytes) -> None:
    """The delivery actors log in Ray's worker files; this puts the refusal in serve's log."""
    with contextlib.suppress(ValueError):
        event = orjson.loads(data)
        if event.get("type") == live_events.REPLY_REFUSED:
            # A fresh logger, not the module's cached one: rare, and it follows the
            # logging configuration in force now.
            structlog.get_logger(__name__).warning(
                "reply_refused",
                conversation_id=event.get("conversation_id"),
                message_id=event.get("message_id"),
                reason=event.get("reason"),
            )


class LiveEvents:
    """Relays the live-events channel to this process's browsers, and logs refusals.

    The relay is subscribed only while a browser is connected: every reply makes several
    events, and a gateway reading and parsing them for nobody spent a share of its CPU on
    it (issue 13). Refusals also go on the notices channel, which is always heard, so
    serve's log says why a reply did not go out whether or not a dashboard is open.
    """

    def __init__(self, redis: Redis, prefix: str, *, queue_size: int = 256) -> None:
        self._redis = redis
        self._prefix = prefix
        self._queue_size = queue_size
        self._clients: set[asyncio.Queue[bytes]] = set()
        self._notices = BackgroundTask("live-notices")
        self._relay = BackgroundTask("live-events")
        self._stopping = False

    def start(self) -> None:
        self._notices.start(self._listen_notices)

    async def stop(self) -> None:
        self._stopping = True
        for queue in list(self._clients):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(CLOSE)
        await self._relay.stop()
        await self._notices.stop()

    @property
    def relaying(self) -> bool:
        return self._relay.running

    def subscribe(self) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._queue_size)
        self._clients.add(queue)
        if not self._stopping:
            self._relay.start(self._listen)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self._clients.discard(queue)

    def dispatch(self, data: bytes) -> None:
        for queue in list(self._clients):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                # Drop this client's backlog; it refetches everything on "resync".
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(RESYNC)

    async def _listen(self) -> None:
        # Ends at the first event heard with no browser left (a new one starts it again).
        await self._hear(live_events.channel(self._prefix), self._relayed, resync=True)

    def _relayed(self, data: bytes) -> bool:
        self.dispatch(data)
        return bool(self._clients)

    async def _listen_notices(self) -> None:
        await self._hear(live_events.notices_channel(self._prefix), _logged, resync=False)

    async def _hear(self, name: str, handle: Callable[[bytes], bool], *, resync: bool) -> None:
        lost = False
        while True:
            try:
                async with live_events.subscription(self._redis, name) as events:
                    if lost:
                        log.warning("live_events_subscription_back", channel=name)
                        lost = False
                    async for data in events:
                        if not handle(data):
                            return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis restarted or the connection dropped: clients resync once we are back.
                # Said once per outage, not once a second while it lasts.
                if not lost:
                    log.warning(
                        "live_events_subscription_lost", channel=name, error=type(exc).__name__
                    )
                lost = True
                await asyncio.sleep(1.0)
                if resync:
                    self.dispatch(RESYNC)


def _logged(data: bytes) -> bool:
    if _REFUSED_MARK in data:
        _log_refusal(data)
    return True


# How far back the announcer looks for the freshest status webhook it stored.
STATUS_AGE_WINDOW_SECONDS = 10.0


class Announcer:
    """Publishes the gateway's own events (new inbound messages, status webhooks) in
    batches from a background task, so the webhook never waits on Redis to answer."""

    def __init__(self, redis: Redis, prefix: str, *, interval: float = 0.05) -> None:
        self._redis = redis
        self._prefix = prefix
        self._interval = interval
        # Bounded: under overload old hints are dropped; pages resync on their next fetch.
        self._pending: deque[bytes] = deque(maxlen=10_000)
        self._statuses: list[str] = []
        # (when, age) of the freshest status stored in each flush of the last window.
        self._status_ages: deque[tuple[float, float]] = deque()
        self._freshest: float | None = None  # since the last flush
        self._wakeup = asyncio.Event()
        self._background = BackgroundTask("announcer")

    def announce(self, kind: str, **fields: Any) -> None:
        self._pending.append(live_events.encode(kind, **fields))
        self._wakeup.set()

    def count_status(self, status: str) -> None:
        if len(self._statuses) < 10_000:
            self._statuses.append(status)

    def note_status_age(self, seconds: float) -> None:
        """A status webhook stored `seconds` after Meta stamped it (store.webhook_lag)."""
        if self._freshest is None or seconds < self._freshest:
            self._freshest = seconds
        self._wakeup.set()

    def _status_lag(self) -> float | None:
        """The age of the freshest status of the last STATUS_AGE_WINDOW_SECONDS.

        The freshest, not the oldest: one late straggler (Meta retrying a status from an
        hour ago) says nothing of the pipeline, while a backlog makes even the newest
        statuses old.
        """
        now = time.monotonic()
        if self._freshest is not None:
            self._status_ages.append((now, self._freshest))
            self._freshest = None
        while self._status_ages and self._status_ages[0][0] < now - STATUS_AGE_WINDOW_SECONDS:
            self._status_ages.popleft()
        return min((age for _, age in self._status_ages), default=None)

    def start(self) -> None:
        self._background.start(self._run)

    async def stop(self) -> None:
        await self._background.stop()
        with contextlib.suppress(Exception):
            await self._flush()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self._interval)
            self._wakeup.clear()
            try:
                await self._flush()
            except Exception as exc:
                log.debug("announce_failed", error=repr(exc))

    async def _flush(self) -> None:
        from store import cluster_metrics as cm

        events = list(self._pending)
        self._pending.clear()
        statuses, self._statuses = self._statuses, []
        age = self._status_lag()
        if age is not None:
            name, args, kwargs = webhook_lag.record_command(self._prefix, age)
            await getattr(self._redis, name)(*args, **kwargs)
        if statuses:
            batch = cm.MetricBatch(self._prefix)
            for status in statuses:
                batch.count(cm.STATUS_TRANSITIONS, status)
            await batch.send(self._redis)
        if events:
            await live_events.publish_encoded(self._redis, self._prefix, events)
