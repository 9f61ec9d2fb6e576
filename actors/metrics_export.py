"""Serve the actors' Prometheus metrics from the gateway's /metrics.

Actors run in Ray worker processes, possibly on other nodes, where nothing scrapes them.
At scrape time the gateway asks each actor for its metric families (one batched round
of Ray calls, bounded by a timeout) and renders them with an `actor` label, so the
families of several actors of one kind merge into one series set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merge(per_actor: Mapping[str, list[Metric]]) -> list[Metric]:
    merged: dict[str, Metric] = {}
    for actor, families in per_actor.items():
        for family in families:
            into = merged.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            for sample in family.samples:
                into.add_sample(
                    sample.name, {**sample.labels, "actor": actor}, sample.value, sample.timestamp
                )
    return list(merged.values())


async def render_actor_metrics(actors: Mapping[str, Any], *, wait: float = 2.0) -> bytes:
    """Prometheus text of every actor that answers in time; the others are logged and skipped."""
    names = list(actors)
    results = await asyncio.gather(
        *(asyncio.wait_for(actors[n].metric_families.remote(), wait) for n in names),
        return_exceptions=True,
    )
    answered: dict[str, list[Metric]] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("actor_metrics_unavailable", actor=name, error=repr(result)[:200])
        else:
            answered[name] = result
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merge(answered)))
    return generate_latest(registry)
