"""Latency samples and counters of one run, and their percentiles."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


def percentile(samples: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(samples: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds."""
    return {
        "p50_ms": _ms(percentile(samples, 0.50)),
        "p95_ms": _ms(percentile(samples, 0.95)),
        "p99_ms": _ms(percentile(samples, 0.99)),
        "max_ms": _ms(max(samples) if samples else None),
    }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


@dataclass
class RunStats:
    sent: int = 0  # webhooks posted, duplicates and retries included
    acked: int = 0  # distinct messages answered 200
    duplicates_posted: int = 0
    replies: int = 0  # replies a customer saw
    timeouts: int = 0  # customer waits that ran out
    errors: Counter[str] = field(default_factory=Counter)
    ack_latency: list[float] = field(default_factory=list)
    reply_latency: list[float] = field(default_factory=list)
    # (monotonic time, seconds from the message to its reply) of every reply, for windows.
    reply_times: list[float] = field(default_factory=list)
    # (first post, reply seen) of every answered message, for the recovery after a fault.
    answered: list[tuple[float, float]] = field(default_factory=list)

    def replies_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.reply_times if start <= t < end)
