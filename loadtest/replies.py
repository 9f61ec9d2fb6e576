"""Where the load tester sees replies: the Graph API fake's record of sends.

In a self-contained run the fake lives in this process and is read directly. Against a
running service in sandbox mode, its record is read over HTTP (`/sandbox/_fake/messages`).
Either way each reply is handed to the customer it was sent to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import aiohttp

from fakes.graph_api import GraphApiFake


@dataclass(frozen=True, slots=True)
class SeenReply:
    to: str
    text: str | None
    callback: str | None  # biz_opaque_callback_data: "<outbound row id>.<part>"
    at: float  # time.monotonic() in this process when it was seen


class ReplyFeed:
    """Fans sends out to per-customer queues; keeps every one for the final checks."""

    def __init__(self) -> None:
        self.seen: list[SeenReply] = []
        self._queues: defaultdict[str, asyncio.Queue[SeenReply]] = defaultdict(asyncio.Queue)
        self._task: asyncio.Task[None] | None = None

    def queue(self, phone: str) -> asyncio.Queue[SeenReply]:
        return self._queues[phone]

    def _take(self, records: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for record in records:
            reply = SeenReply(
                str(record.get("to")),
                record.get("text"),
                record.get("biz_opaque_callback_data"),
                now,
            )
            self.seen.append(reply)
            self._queues[reply.to].put_nowait(reply)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        raise NotImplementedError


class InProcessFeed(ReplyFeed):
    def __init__(self, fake: GraphApiFake) -> None:
        super().__init__()
        self._fake = fake

    async def _follow(self) -> None:
        cursor = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await self._fake.wait_for(cursor + 1, timeout=1.0)
            fresh = self._fake.sent[cursor:]
            cursor += len(fresh)
            self._take(
                [
                    {
                        "to": m.to,
                        "text": m.text,
                        "biz_opaque_callback_data": m.biz_opaque_callback_data,
                    }
                    for m in fresh
                ]
            )


class SandboxFeed(ReplyFeed):
    """Polls a running service's sandbox record; its list only grows until a reset."""

    def __init__(self, base_url: str, *, interval: float = 0.25) -> None:
        super().__init__()
        self._url = base_url.rstrip("/") + "/sandbox/_fake/messages"
        self._interval = interval

    async def _follow(self) -> None:
        cursor: int | None = None
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(self._url) as response:
                    records = await response.json()
                if cursor is None:
                    cursor = len(records)  # what was sent before this run is not ours
                self._take(records[cursor:])
                cursor = len(records)
                await asyncio.sleep(self._interval)
