"""The gateway's shutdown switch: once set, webhooks answer 503 so Meta retries later.

`serve` sets it first on SIGTERM or Ctrl-C, while the shards finish what they hold
(DESIGN.md §3, shutdown); a retried delivery then reaches the next process.
"""

from __future__ import annotations

from aiohttp import web


class Draining:
    def __init__(self) -> None:
        self.active = False

    def begin(self) -> None:
        self.active = True


DRAINING = web.AppKey("draining", Draining)

# Meta retries a 5xx webhook delivery on its own schedule; this is a hint to others.
RETRY_AFTER_SECONDS = "5"
