"""The gateway's one door to the actors: typed methods over the Ray actor handles.

Ray's own `ActorHandle[T]` types no method (its `__getattr__` returns `Never`) and the
actor classes are plain classes, so the handles are described here by small Protocols:
each remote method as Ray exposes it, its `.remote()` answering an `ObjectRef` (awaitable)
or, for streaming methods (`num_returns="streaming"`), an async iterator of them. The
handles are cast to these Protocols once, where `actors.runtime` creates them.

The timeouts and failure rules are the callers' (health, diagnostics, /metrics); the
client only makes the calls and walks the streaming results.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import ParamSpec, Protocol, TypedDict, TypeVar

import ray
import structlog
from prometheus_client.metrics_core import Metric
from ray import ObjectRef

from actors.metrics_export import merge, render_families
from actors.wire import DeliveryRequest, DeliveryResult, LLMRequest, LLMResult
from store.records import InboxItem

log = structlog.get_logger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


class Remote(Protocol[_P, _R]):
    """An actor method as Ray exposes it on a handle."""

    def remote(self, *args: _P.args, **kwargs: _P.kwargs) -> ObjectRef[_R]: ...


class Streaming(Protocol[_P, _R]):
    """A streaming actor method: each yield of the actor is one ObjectRef."""

    def remote(self, *args: _P.args, **kwargs: _P.kwargs) -> AsyncIterator[ObjectRef[_R]]: ...


class ShardStats(TypedDict):
    shard: int
    pid: int
    active_conversations: int
    queued: int  # waiting in mailboxes
    in_hand: int  # being handled, one per busy conversation at most
    held: int  # queued + in_hand, never over max_queued
    max_queued: int
    refused: int  # items deliver() left to the router (back-pressure)
    replaying: bool
    activations: dict[str, int]


class LLMHealth(TypedDict):
    mode: str
    models: list[str]
    breakers: dict[str, str]


class ShardHandle(Protocol):
    """actors.conversation.ConversationShard"""

    @property
    def ping(self) -> Remote[[], int]: ...
    @property
    def deliver(self) -> Remote[[list[InboxItem]], int]: ...
    @property
    def passivate_idle(self) -> Remote[[float], int]: ...
    @property
    def drain(self) -> Remote[[], None]: ...
    @property
    def close(self) -> Remote[[float], dict[str, int]]: ...
    @property
    def stats(self) -> Remote[[], ShardStats]: ...


class MetricsSource(Protocol):
    @property
    def metric_families(self) -> Remote[[], list[Metric]]: ...


class LLMHandle(MetricsSource, Protocol):
    """actors.llm.LLMPool"""

    @property
    def ping(self) -> Remote[[], str]: ...
    @property
    def complete(self) -> Streaming[[list[LLMRequest]], list[LLMResult]]: ...
    @property
    def health(self) -> Remote[[], LLMHealth]: ...


class DeliveryHandle(Protocol):
    """actors.delivery.DeliveryActor"""

    @property
    def ping(self) -> Remote[[], str]: ...
    @property
    def send(self) -> Streaming[[list[DeliveryRequest]], list[DeliveryResult]]: ...
    @property
    def mark_read(self) -> Remote[[list[tuple[str, str]]], int]: ...
    @property
    def fetch_media(self) -> Remote[[list[tuple[int, str]]], int]: ...


class NoActors(RuntimeError):
    """No actor of the kind asked for is attached to this process."""


@dataclass
class ActorClient:
    """The service's actors, by kind, and the calls the gateway makes to them."""

    shards: list[ShardHandle]
    llm: list[LLMHandle]
    delivery: list[DeliveryHandle]

    def all(self) -> list[ShardHandle | LLMHandle | DeliveryHandle]:
        return [*self.shards, *self.llm, *self.delivery]

    def describe(self) -> str:
        return f"{len(self.shards)} shards, {len(self.llm)} llm, {len(self.delivery)} delivery"

    async def ping(self) -> None:
        """Wait until every actor answers; shards replay their unprocessed inbox here."""
        await asyncio.gather(*(_wait(a.ping.remote()) for a in self.all()))

    async def send_reply(self, request: DeliveryRequest, *, wait: float) -> DeliveryResult:
        """One operator reply through a delivery actor, with its result."""
        if not self.delivery:
            raise NoActors("delivery actors are not attached to this gateway")
        actor = random.choice(self.delivery)
        first = _first(actor.send.remote([request]), "the delivery actor returned no result")
        return await asyncio.wait_for(first, wait)

    async def complete_one(self, request: LLMRequest, *, wait: float) -> LLMResult:
        """One prompt through an LLM actor, with its result."""
        if not self.llm:
            raise NoActors("LLM actors are not attached to this gateway")
        actor = random.choice(self.llm)
        first = _first(actor.complete.remote([request]), "no answer")
        return await asyncio.wait_for(first, wait)

    async def llm_health(self, *, wait: float) -> list[LLMHealth]:
        """Each LLM actor's health, asked in turn; the first that fails in time raises."""
        return [await asyncio.wait_for(_wait(a.health.remote()), wait) for a in self.llm]

    async def close_shards(self, *, timeout: float) -> list[dict[str, int]]:  # noqa: ASYNC109
        """Shutdown: every shard takes nothing more and finishes what it has in hand.

        Bounded: each shard gives up waiting after `timeout`, and a shard that does not
        answer by then (plus a grace second) is left out.
        """
        results = await asyncio.gather(
            *(asyncio.wait_for(_wait(s.close.remote(timeout)), timeout + 1) for s in self.shards),
            return_exceptions=True,
        )
        return [r for r in results if isinstance(r, dict)]

    async def shard_stats(self, *, wait: float) -> list[ShardStats]:
        """The stats of every shard that answers in time; the others are left out."""
        results = await asyncio.gather(
            *(asyncio.wait_for(_wait(s.stats.remote()), wait) for s in self.shards),
            return_exceptions=True,
        )
        return [r for r in results if isinstance(r, dict)]

    async def llm_metrics(self, *, wait: float = 2.0) -> bytes:
        """Prometheus text of the LLM actors' own families, labelled llm-0, llm-1, ..."""
        return await render_actor_metrics(
            {f"llm-{i}": actor for i, actor in enumerate(self.llm)}, wait=wait
        )

    def kill(self) -> None:
        for actor in self.all():
            ray.kill(actor, no_restart=True)  # type: ignore[arg-type]


async def render_actor_metrics(actors: Mapping[str, MetricsSource], *, wait: float = 2.0) -> bytes:
    """Prometheus text of every actor that answers in time; the others are logged and skipped.

    Actors run in Ray worker processes, possibly on other nodes, where nothing scrapes
    them: they are asked at scrape time (one batched round of calls) and rendered with an
    `actor` label, so the families of several actors of one kind merge into one series set.
    """
    names = list(actors)
    results = await asyncio.gather(
        *(asyncio.wait_for(_wait(actors[n].metric_families.remote()), wait) for n in names),
        return_exceptions=True,
    )
    answered: dict[str, list[Metric]] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("actor_metrics_unavailable", actor=name, error=repr(result)[:200])
        else:
            answered[name] = result
    return render_families(merge(answered))


async def _wait(ref: ObjectRef[_T]) -> _T:
    # A coroutine around the ref: gather and wait_for then treat it as any other task,
    # and the result keeps its type.
    return await ref


async def _first(stream: AsyncIterator[ObjectRef[list[_T]]], nothing: str) -> _T:
    # A streaming call yields lists of results; a call with one request yields one.
    async for ref in stream:
        chunk = await ref
        return chunk[0]
    raise RuntimeError(nothing)


__all__ = [
    "ActorClient",
    "DeliveryHandle",
    "LLMHandle",
    "LLMHealth",
    "NoActors",
    "ShardHandle",
    "ShardStats",
    "render_actor_metrics",
]
