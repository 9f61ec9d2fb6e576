"""Prometheus text from metric families gathered before the scrape.

The gateway renders families it computed itself (the cluster's counters in Redis, the
shards' gauges) and families the actors sent it (actors.client.render_actor_metrics);
both go through one collector here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class Families(Collector):
    """A collector that yields metric families computed before the scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def render_families(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(families))
    return generate_latest(registry)


def merge(per_actor: Mapping[str, list[Metric]]) -> list[Metric]:
    """One family per name, each sample labelled with the actor that reported it."""
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
