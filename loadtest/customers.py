"""Simulated customers: each writes a signed webhook, waits for its reply and thinks.

A webhook that is not answered 200 is posted again with backoff, as Meta retries, until
the run ends. A share of webhooks is posted twice on purpose, as Meta's retries do.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from loadtest.options import LoadOptions
from loadtest.replies import ReplyFeed, SeenReply
from loadtest.stats import RunStats
from loadtest.webhooks import (
    WEBHOOK_PATH,
    customer_phone,
    message_text,
    message_wamid,
    signed_headers,
    text_webhook,
)

_SEQ = re.compile(r"#(\d+)")


@dataclass(frozen=True)
class Target:
    base_url: str
    app_secret: str
    business_number: str


@dataclass(frozen=True, slots=True)
class Acked:
    """A message the service answered 200: from here on it owes exactly one reply."""

    phone: str
    seq: int
    wamid: str


@dataclass
class Customer:
    index: int
    phone: str
    pending: dict[int, float] = field(default_factory=dict)  # seq -> first post time
    next_seq: int = 1


class Crowd:
    def __init__(
        self, options: LoadOptions, target: Target, feed: ReplyFeed, stats: RunStats, run: str
    ) -> None:
        self._o = options
        self._target = target
        self._feed = feed
        self._stats = stats
        self._run = run
        self._random = random.Random(options.seed)
        self.acked: list[Acked] = []
        self.customers = [Customer(i, customer_phone(run, i)) for i in range(options.customers)]
        self._http: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def run(self, stop_at: float) -> None:
        """Write until `stop_at` (monotonic); every message's retries stop there too."""
        connector = aiohttp.TCPConnector(limit=min(1000, max(100, self._o.customers)))
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            self._http = http
            if self._o.closed_loop:
                await asyncio.gather(*(self._closed_loop(c, stop_at) for c in self.customers))
            else:
                await self._open_loop(stop_at)
            for task in list(self._background):
                with contextlib.suppress(Exception):
                    await task

    async def _closed_loop(self, customer: Customer, stop_at: float) -> None:
        await asyncio.sleep(self._o.ramp_up * customer.index / max(1, self._o.customers))
        queue = self._feed.queue(customer.phone)
        while time.monotonic() < stop_at:
            seq = await self._write(customer, stop_at)
            if seq is None:
                return
            deadline = time.monotonic() + self._o.reply_timeout
            while seq in customer.pending:
                try:
                    reply = await asyncio.wait_for(queue.get(), deadline - time.monotonic())
                except TimeoutError:
                    self._stats.timeouts += 1
                    customer.pending.pop(seq, None)
                    break
                self._reply_seen(customer, reply)
            if self._o.think_mean > 0:
                await asyncio.sleep(self._random.expovariate(1 / self._o.think_mean))

    async def _open_loop(self, stop_at: float) -> None:
        assert self._o.rate is not None
        readers = [asyncio.create_task(self._read_replies(c)) for c in self.customers]
        interval = 1 / self._o.rate
        started = time.monotonic()
        n = 0
        while time.monotonic() < stop_at:
            customer = self.customers[n % len(self.customers)]
            self._spawn(self._write_discard(customer, stop_at))
            n += 1
            await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
        for reader in readers:
            reader.cancel()

    async def _read_replies(self, customer: Customer) -> None:
        queue = self._feed.queue(customer.phone)
        while True:
            self._reply_seen(customer, await queue.get())

    async def _write_discard(self, customer: Customer, stop_at: float) -> None:
        await self._write(customer, stop_at)

    def _reply_seen(self, customer: Customer, reply: SeenReply) -> None:
        match = _SEQ.search(reply.text or "")
        seq = int(match.group(1)) if match else min(customer.pending, default=None)
        sent_at = customer.pending.pop(seq, None) if seq is not None else None
        self._stats.replies += 1
        self._stats.reply_times.append(reply.at)
        if sent_at is not None:
            self._stats.reply_latency.append(reply.at - sent_at)
            self._stats.answered.append((sent_at, reply.at))

    async def _write(self, customer: Customer, stop_at: float) -> int | None:
        seq = customer.next_seq
        customer.next_seq += 1
        wamid = message_wamid(self._run, customer.index, seq)
        raw = text_webhook(
            business_number=self._target.business_number,
            phone=customer.phone,
            wamid=wamid,
            text=message_text(self._run, customer.index, seq),
        )
        customer.pending[seq] = time.monotonic()
        backoff = 0.25
        while True:
            if await self._post(raw):
                self.acked.append(Acked(customer.phone, seq, wamid))
                self._stats.acked += 1
                if self._random.random() < self._o.duplicate_share:
                    self._stats.duplicates_posted += 1
                    self._spawn(self._post_duplicate(raw))
                return seq
            if time.monotonic() + backoff > stop_at:
                customer.pending.pop(seq, None)
                return None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _post_duplicate(self, raw: bytes) -> None:
        await self._post(raw)

    async def _post(self, raw: bytes) -> bool:
        assert self._http is not None
        started = time.monotonic()
        self._stats.sent += 1
        try:
            async with self._http.post(
                self._target.base_url + WEBHOOK_PATH,
                data=raw,
                headers=signed_headers(raw, self._target.app_secret),
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._stats.errors[type(exc).__name__] += 1
            return False
        if status != 200:
            self._stats.errors[f"http_{status}"] += 1
            return False
        self._stats.ack_latency.append(time.monotonic() - started)
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
