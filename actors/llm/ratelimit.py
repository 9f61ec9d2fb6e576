"""Requests- and tokens-per-minute limits that hold across every LLM actor on every node.

Each (model, kind) has a token bucket in Redis (store.rate_bucket), so two actors can
never both spend the same allowance.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from store.rate_bucket import OverLimit, RedisTokenBucket


class RateLimited(Exception):
    """The model's shared allowance did not free up within the wait bound."""


class ClusterRateLimiter:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        requests_per_minute: int = 0,
        tokens_per_minute: int = 0,
        burst_seconds: float = 10.0,
        max_wait: float = 5.0,
    ) -> None:
        self._bucket = RedisTokenBucket(redis)
        self._prefix = prefix
        self._rpm = requests_per_minute
        self._tpm = tokens_per_minute
        self._burst = burst_seconds
        self._max_wait = max_wait

    async def acquire(self, model: str, tokens: int) -> None:
        """Wait for one request and `tokens` tokens of `model`'s allowance, or raise."""
        deadline = time.monotonic() + self._max_wait
        try:
            for kind, per_minute, cost in (("rpm", self._rpm, 1), ("tpm", self._tpm, tokens)):
                if per_minute > 0:
                    await self._bucket.take(
                        f"{self._prefix}llm:{kind}:{model}",
                        per_second=per_minute / 60.0,
                        capacity=per_minute * self._burst / 60.0,
                        cost=cost,
                        deadline=deadline,
                    )
        except OverLimit as exc:
            raise RateLimited(str(exc)) from exc
