"""Prometheus metrics of the gateway process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOK_REQUESTS = Counter(
    "wa_webhook_requests_total", "Webhook deliveries by source and outcome", ["source", "outcome"]
)
WEBHOOK_ACK_SECONDS = Histogram(
    "wa_webhook_ack_seconds",
    "Time from receiving a webhook to answering it",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INBOX_BATCH_SIZE = Histogram(
    "wa_inbox_commit_batch_size",
    "Webhook requests stored per group commit",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
