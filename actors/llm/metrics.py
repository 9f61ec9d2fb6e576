"""Prometheus metrics of one LLM actor, in its own registry.

LLM actors run in Ray worker processes that Prometheus does not scrape. The gateway asks
each actor for its families at scrape time (actors.client.render_actor_metrics) and serves them with
an `actor` label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from actors.llm.breaker import BreakerState

BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class LLMMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls = Counter(
            "wa_llm_calls", "LLM HTTP calls by model and outcome", ["model", "outcome"], registry=r
        )
        self.latency = Histogram(
            "wa_llm_latency_seconds",
            "Latency of successful LLM calls",
            ["model"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=r,
        )
        self.tokens = Counter(
            "wa_llm_tokens", "Tokens used, by model and kind", ["model", "kind"], registry=r
        )
        self.cost = Counter("wa_llm_cost", "Cost reported by the provider", ["model"], registry=r)
        self.replies = Counter(
            "wa_llm_replies",
            "Replies by how they were produced: primary, fallback or failed (polite message)",
            ["result"],
            registry=r,
        )
        self.breaker = Gauge(
            "wa_llm_breaker_state",
            "Circuit breaker per model: 0 closed, 1 half-open, 2 open",
            ["model"],
            registry=r,
        )
