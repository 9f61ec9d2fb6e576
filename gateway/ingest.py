"""Group commit of webhook deliveries into the inbox.

Concurrent webhook requests wait on a writer task, which stores everything that
queued up while its previous transaction ran in a single transaction, then answers
them all. That keeps "store before acknowledge" (DESIGN.md §3) while paying one
commit per batch instead of one per request.

There are a few writers, each owning a partition of the customer phones, so commits
overlap. Each writer is serial: one phone's messages are committed, numbered and
handed to the router in the order they arrived, which keeps per-phone order.

One hostile body must not fail the batch it shares (issue 11 §3.8). The edge cleans what
Postgres would refuse (gateway.whatsapp.models); should a value still be refused, the
batch is committed again one request at a time, and a request Postgres refuses on its
own is kept raw as unparsed and answered 200, so Meta's retries do not fail it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import orjson
import structlog

from gateway.background import BackgroundTask
from gateway.metrics import INBOX_BATCH_SIZE
from gateway.whatsapp import ParsedWebhook
from store import inbox, outbound, past_messages, webhook_fields, webhook_log
from store.db import close_pool, create_pool, retry_conflicts
from store.inbox import without_nul
from store.records import InboxItem, UnparsedItem, WebhookEvent

log = structlog.get_logger(__name__)
# How long a closing pool waits for its connections to come back before it cuts them.
POOL_CLOSE_SECONDS = 5.0


class StoreUnavailable(RuntimeError):
    """Postgres could not take the delivery: the webhook must answer 503 so Meta retries."""


def _refused_by_data(exc: BaseException) -> bool:
    """Postgres (or asyncpg's encoder) refused a value: retrying the same data fails again.

    Data exceptions (22), integrity violations (23) and program limits (54, an index row
    too large) are about the rows; anything else (a lost connection, a shutdown, a
    deadlock) is about the moment, and Meta's retry may well succeed.
    """
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in {"22", "23", "54"}
    return isinstance(exc, asyncpg.DataError | ValueError | TypeError | OverflowError)


@dataclass(slots=True)
class _Pending:
    parsed: ParsedWebhook
    future: asyncio.Future[list[InboxItem]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PoolHolder:
    """Creates the asyncpg pool on first use, so the gateway starts while Postgres is down."""

    def __init__(self, dsn: str, *, min_size: int = 2, max_size: int = 10) -> None:
        self._dsn = dsn
        self._min = min_size
        self._max = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                self._pool = await create_pool(self._dsn, min_size=self._min, max_size=self._max)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            if not await close_pool(pool, POOL_CLOSE_SECONDS):
                log.warning("db_pool_close_timed_out", seconds=POOL_CLOSE_SECONDS)


class InboxWriter:
    """One serial writer: one transaction at a time, batches as large as the queue."""

    def __init__(
        self,
        pools: PoolHolder,
        on_stored: Callable[[Sequence[InboxItem]], None],
        *,
        max_batch: int = 500,
        max_log_backlog: int = 10_000,
    ) -> None:
        self._pools = pools
        self._on_stored = on_stored
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # Log rows are written with a later commit, once their real latency is known.
        self._events: deque[WebhookEvent] = deque(maxlen=max_log_backlog)
        self._background = BackgroundTask("inbox-writer")

    def start(self) -> None:
        self._background.start(self._run)

    async def stop(self) -> None:
        await self._background.stop()
        with contextlib.suppress(Exception):
            await self._flush_events()

    def log_event(self, event: WebhookEvent) -> None:
        self._events.append(event)

    async def submit(self, parsed: ParsedWebhook) -> list[InboxItem]:
        """Store a delivery durably; return its messages that were new."""
        pending = _Pending(parsed)
        await self._queue.put(pending)
        return await pending.future

    async def _run(self) -> None:
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=1.0)
            except TimeoutError:
                with contextlib.suppress(Exception):
                    await self._flush_events()
                continue
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        INBOX_BATCH_SIZE.observe(len(batch))
        events = list(self._events)
        try:
            new_items = await retry_conflicts(
                lambda: self._write([p.parsed for p in batch], events)
            )
        except Exception as exc:
            if len(batch) > 1 and _refused_by_data(exc):
                log.warning("inbox_commit_isolating", error=repr(exc)[:300], requests=len(batch))
                for p in batch:
                    await self._commit_alone(p)
                await self._flush_or_drop_events()
                return
            if len(batch) == 1 and _refused_by_data(exc):
                await self._commit_alone(batch[0])
                await self._flush_or_drop_events()
                return
            log.warning("inbox_commit_failed", error=repr(exc), requests=len(batch))
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(StoreUnavailable(str(exc)))
            return
        for _ in events:
            self._events.popleft()
        self._answer(batch, new_items)

    async def _write(
        self, deliveries: Sequence[ParsedWebhook], events: Sequence[WebhookEvent]
    ) -> list[InboxItem]:
        """One transaction; the tables a batch does not touch cost no statement."""
        pool = await self._pools.get()
        async with pool.acquire() as conn, conn.transaction():
            messages = [m for d in deliveries for m in d.messages]
            new_items = await inbox.insert_inbound(conn, messages)
            await outbound.apply_statuses(conn, [s for d in deliveries for s in d.statuses])
            await past_messages.insert_past(conn, [m for d in deliveries for m in d.past])
            await webhook_fields.record_account_events(
                conn, [e for d in deliveries for e in d.account_events]
            )
            await webhook_fields.record_unparsed(conn, [u for d in deliveries for u in d.unparsed])
            await webhook_log.record(conn, events)
        return new_items

    async def _commit_alone(self, pending: _Pending) -> None:
        """One request in its own transaction; if Postgres refuses it alone, keep it raw."""
        try:
            new_items = await self._write([pending.parsed], ())
        except Exception as exc:
            if not _refused_by_data(exc):
                pending.future.set_exception(StoreUnavailable(str(exc)))
                return
            log.warning("inbox_request_refused", error=repr(exc)[:300])
            kept = ParsedWebhook(unparsed=[_refused(pending.parsed, exc)])
            try:
                await self._write([kept], ())
            except Exception as again:
                pending.future.set_exception(StoreUnavailable(str(again)))
                return
            pending.parsed.refused = kept.unparsed[0].error
            new_items = []
        self._answer([pending], new_items)

    def _answer(self, batch: Sequence[_Pending], new_items: list[InboxItem]) -> None:
        by_id = {item.provider_message_id: item for item in new_items}
        # Route before answering: a stored message is always on its way to a shard.
        try:
            self._on_stored(new_items)
        except Exception:
            # The rows are durable; the inbox sweeper replays whatever was not routed.
            log.exception("route_after_store_failed", items=len(new_items))
        for p in batch:
            if not p.future.done():
                # pop: a message delivered twice in one batch is new for the first only.
                mine = [
                    item
                    for m in p.parsed.messages
                    if (item := by_id.pop(m.provider_message_id, None)) is not None
                ]
                p.future.set_result(mine)

    async def _flush_or_drop_events(self) -> None:
        """Log rows refused by Postgres are dropped: they must not fail every later batch."""
        try:
            await self._flush_events()
        except Exception as exc:
            if _refused_by_data(exc):
                log.warning("webhook_log_rows_dropped", rows=len(self._events), error=repr(exc))
                self._events.clear()

    async def _flush_events(self) -> None:
        if not self._events:
            return
        events = list(self._events)
        pool = await self._pools.get()
        async with pool.acquire() as conn:
            await webhook_log.record(conn, events)
        for _ in events:
            self._events.popleft()


class Ingest:
    """The gateway's entry to the inbox: partitions each delivery over the writers."""

    def __init__(
        self,
        pools: PoolHolder,
        on_stored: Callable[[Sequence[InboxItem]], None],
        *,
        writers: int = 4,
        max_batch: int = 500,
    ) -> None:
        self._writers = [
            InboxWriter(pools, on_stored, max_batch=max_batch) for _ in range(max(writers, 1))
        ]

    def start(self) -> None:
        for writer in self._writers:
            writer.start()

    async def stop(self) -> None:
        for writer in self._writers:
            await writer.stop()

    def log_event(self, event: WebhookEvent) -> None:
        self._writers[0].log_event(event)

    def _writer_for(self, key: str) -> int:
        return zlib.crc32(key.encode()) % len(self._writers)

    async def submit(self, parsed: ParsedWebhook) -> list[InboxItem]:
        """Store a delivery durably; return its messages that were new, in inbox order."""
        parts: dict[int, ParsedWebhook] = {}
        for message in parsed.messages:
            parts.setdefault(
                self._writer_for(message.customer_phone), ParsedWebhook()
            ).messages.append(message)
        for status in parsed.statuses:
            parts.setdefault(
                self._writer_for(status.provider_message_id), ParsedWebhook()
            ).statuses.append(status)
        # Past messages go with their conversation's writer, as live ones do.
        for past in parsed.past:
            part = parts.setdefault(self._writer_for(past.customer_phone), ParsedWebhook())
            part.past.append(past)
        if parsed.account_events or parsed.unparsed:
            rest = parts.setdefault(next(iter(parts), 0), ParsedWebhook())
            rest.account_events.extend(parsed.account_events)
            rest.unparsed.extend(parsed.unparsed)
        if len(parts) <= 1:
            index = next(iter(parts), 0)
            return await self._writers[index].submit(parsed)
        results = await asyncio.gather(
            *(self._writers[i].submit(part) for i, part in parts.items()), return_exceptions=True
        )
        for result in results:
            # Parts that did commit are harmless: Meta's retry finds them as duplicates.
            if isinstance(result, BaseException):
                raise result
        parsed.refused = next((p.refused for p in parts.values() if p.refused), None)
        items = [item for result in results if isinstance(result, list) for item in result]
        return sorted(items, key=lambda item: item.message_id)


def _refused(parsed: ParsedWebhook, exc: BaseException) -> UnparsedItem:
    """The part of a request Postgres would not take, as text it always takes."""
    raw = {
        "messages": [m.payload for m in parsed.messages],
        "statuses": [s.provider_message_id for s in parsed.statuses],
        "fields": parsed.fields,
    }
    text = orjson.dumps(without_nul(raw), default=str).decode()
    return UnparsedItem("whatsapp_cloud", "request", f"refused by the store: {exc!r}"[:500], text)
