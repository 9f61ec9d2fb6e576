"""GET /metrics: this process's metrics, plus the cluster's.

The cluster's part is read at scrape time: counters and histograms the delivery actors
and the gateways keep in Redis (store.cluster_metrics), each shard's mailbox depth and
active virtual actors asked of the shards, and the LLM actors' own metric families.
"""

from __future__ import annotations

import structlog
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from actors.metrics_export import render_families
from gateway.state import Services
from store import cluster_metrics as cm

log = structlog.get_logger(__name__)
SHARD_STATS_TIMEOUT = 2.0


def _families(samples: dict[str, cm.Samples]) -> list[Metric]:
    families: list[Metric] = []
    for metric in cm.ALL:
        found = samples.get(metric.name, {})
        if metric.kind == "counter":
            counter = CounterMetricFamily(metric.name, metric.doc, labels=list(metric.labels))
            for (labels, _), value in sorted(found.items()):
                counter.add_metric(list(labels), value)
            families.append(counter)
            continue
        histogram = HistogramMetricFamily(metric.name, metric.doc, labels=list(metric.labels))
        for labels in sorted({labels for labels, _ in found}):
            buckets = [
                (_le(le), found.get((labels, f"le:{le}"), 0.0))
                for le in (*metric.buckets, float("inf"))
            ]
            histogram.add_metric(list(labels), buckets, found.get((labels, "sum"), 0.0))
        families.append(histogram)
    return families


def _le(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


async def _shard_families(services: Services) -> list[Metric]:
    if services.actors is None:
        return []
    depth = GaugeMetricFamily(
        "wa_shard_mailbox_depth", "Messages waiting in a shard's virtual actors", labels=["shard"]
    )
    active = GaugeMetricFamily(
        "wa_active_virtual_actors", "Activated conversation actors per shard", labels=["shard"]
    )

    for stats in await services.actors.shard_stats(wait=SHARD_STATS_TIMEOUT):
        depth.add_metric([str(stats["shard"])], stats["queued"])
        active.add_metric([str(stats["shard"])], stats["active_conversations"])
    return [depth, active]


async def render(services: Services) -> bytes:
    families: list[Metric] = []
    if services.redis is not None:
        try:
            families += _families(await cm.read(services.redis, services.settings.redis_key_prefix))
        except Exception as exc:
            log.warning("cluster_metrics_unreadable", error=repr(exc))
    families += await _shard_families(services)
    body = generate_latest(REGISTRY) + render_families(families)
    if services.actors is not None:
        # LLM calls, latency, tokens and breakers by model, as the LLM actors count them.
        body += await services.actors.llm_metrics()
    return body
