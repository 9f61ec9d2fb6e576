"""Batch many callers' requests into one Ray call; stream the answers back one by one.

The remote method is an async generator (Ray's streaming generator) that yields lists:
whatever results are ready at that moment (see `ready_chunks`), so a slow LLM answer does
not hold back a fast one, and answers that finish together cross Ray as one item rather
than one item each. One Ray call carries up to `max_batch` requests (DESIGN.md §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import structlog

log = structlog.get_logger(__name__)


class _HasRequestId(Protocol):
    @property
    def request_id(self) -> int: ...


Req = TypeVar("Req", bound=_HasRequestId)
Res = TypeVar("Res", bound=_HasRequestId)

# Given the target index and a batch, start the remote streaming call.
StreamCall = Callable[[int, list[Any]], Any]


class BatchCallFailed(RuntimeError):
    """The remote call died before answering this request; the caller may retry."""


class StreamBatcher(Generic[Req, Res]):
    def __init__(
        self,
        call: StreamCall,
        targets: int,
        *,
        max_batch: int = 100,
        max_delay: float = 0.005,
        name: str = "batcher",
    ) -> None:
        self._call = call
        self._round_robin = itertools.cycle(range(max(targets, 1)))
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._name = name
        self._pending: list[tuple[Req, asyncio.Future[Res]]] = []
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flusher: asyncio.Task[None] | None = None

    async def request(self, req: Req) -> Res:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name=self._name)
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._pending.append((req, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        tasks = [t for t in (self._flusher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _flush_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            if len(self._pending) < self._max_batch:
                # Let concurrent callers join this batch.
                await asyncio.sleep(self._max_delay)
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            if not self._pending:
                self._wakeup.clear()
            if batch:
                task = asyncio.create_task(self._consume(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _consume(self, batch: Sequence[tuple[Req, asyncio.Future[Res]]]) -> None:
        waiting = {req.request_id: future for req, future in batch}
        try:
            stream = self._call(next(self._round_robin), [req for req, _ in batch])
            async for ref in stream:
                chunk: list[Res] = await ref
                for result in chunk:
                    future = waiting.pop(result.request_id, None)
                    if future is not None and not future.done():
                        future.set_result(result)
        except Exception as exc:
            log.warning("batch_call_failed", batcher=self._name, error=repr(exc))
            for future in waiting.values():
                if not future.done():
                    future.set_exception(BatchCallFailed(repr(exc)))
            return
        for future in waiting.values():
            if not future.done():
                future.set_exception(BatchCallFailed("no result in the stream"))


T = TypeVar("T")


async def ready_chunks(tasks: Sequence[asyncio.Future[T]]) -> AsyncIterator[list[T]]:
    """Yield the results of `tasks` in lists, each holding every one finished by then."""
    pending: set[asyncio.Future[T]] = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        yield [task.result() for task in done]
