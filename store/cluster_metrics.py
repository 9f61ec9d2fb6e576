"""Prometheus counters and histograms kept in Redis, so every process can add to them.

The actors run in Ray worker processes on any node, and their own prometheus_client
registries are never scraped. They add to Redis hashes instead; the gateway reads the
hashes when /metrics is scraped. One hash per metric, one field per label set (and,
for a histogram, per bucket), bumped with HINCRBYFLOAT: atomic across processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
from redis.asyncio import Redis

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    kind: Literal["counter", "histogram"]
    doc: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = LATENCY_BUCKETS


DELIVERIES = MetricDef(
    "wa_deliveries",
    "counter",
    "Sends to the provider by outcome and Meta error code",
    ("outcome", "code"),
)
REPLY_LATENCY = MetricDef(
    "wa_reply_latency_seconds",
    "histogram",
    "End to end: customer message stored to reply accepted by the provider",
)
STATUS_TRANSITIONS = MetricDef(
    "wa_status_transitions",
    "counter",
    "Outbound status changes by new status (sending, sent, failed; delivered, read by webhook)",
    ("to",),
)
DEAD_LETTERS = MetricDef(
    "wa_dead_letters",
    "counter",
    "Inbound messages that failed every try, by what followed (holding_reply, flag)",
    ("action",),
)
ALL = (DELIVERIES, REPLY_LATENCY, STATUS_TRANSITIONS, DEAD_LETTERS)


def _key(prefix: str, metric: MetricDef) -> str:
    return f"{prefix}metrics:{metric.name}"


def _field(labels: Sequence[str], suffix: str = "") -> bytes:
    return orjson.dumps([list(labels), suffix])


class MetricBatch:
    """Collects increments and sends them in one pipeline round trip."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._ops: list[tuple[str, bytes, float]] = []

    def count(self, metric: MetricDef, *labels: str, amount: float = 1.0) -> None:
        self._ops.append((_key(self._prefix, metric), _field(labels), amount))

    def observe(self, metric: MetricDef, value: float, *labels: str) -> None:
        key = _key(self._prefix, metric)
        # Cumulative buckets, as Prometheus expects them.
        for le in (*metric.buckets, float("inf")):
            if value <= le:
                self._ops.append((key, _field(labels, f"le:{le}"), 1.0))
        self._ops.append((key, _field(labels, "sum"), value))
        self._ops.append((key, _field(labels, "count"), 1.0))

    async def send(self, redis: Redis | None) -> None:
        if redis is None or not self._ops:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for key, field, amount in self._ops:
                pipe.hincrbyfloat(key, field, amount)
            await pipe.execute()
        self._ops.clear()


Samples = Mapping[tuple[tuple[str, ...], str], float]


async def read(redis: Redis, prefix: str) -> dict[str, Samples]:
    """Every metric's samples: (label values, suffix) → value."""
    async with redis.pipeline(transaction=False) as pipe:
        for metric in ALL:
            pipe.hgetall(_key(prefix, metric))
        raw = await pipe.execute()
    result: dict[str, Samples] = {}
    for metric, fields in zip(ALL, raw, strict=True):
        samples: dict[tuple[tuple[str, ...], str], float] = {}
        for field, value in fields.items():
            labels, suffix = orjson.loads(field)
            samples[(tuple(labels), suffix)] = float(value)
        result[metric.name] = samples
    return result
