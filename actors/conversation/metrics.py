"""Prometheus metrics of the actor boundary, as seen from the gateway process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROUTER_QUEUE_DEPTH = Gauge(
    "wa_router_queue_depth", "Inbox items waiting to be sent to a shard", ["shard"]
)
ROUTER_OVERFLOW = Counter(
    "wa_router_overflow_total",
    "Items not queued because the shard queue was full; the inbox sweeper replays them",
)
ROUTER_DEFERRED = Counter(
    "wa_router_deferred_total",
    "Items a full shard did not take; kept at the head of the router queue and offered again",
)
