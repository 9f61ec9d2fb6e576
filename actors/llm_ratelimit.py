"""Requests- and tokens-per-minute limits that hold across every LLM actor on every node.

A token bucket per (model, kind) lives in Redis and is updated by one atomic Lua
script, so two actors can never both spend the same allowance. The script uses the
Redis server's clock, so nodes with skewed clocks still agree.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

# Returns 0 when `cost` was taken from the bucket, else the milliseconds until it could be.
_TAKE = """
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local cost = math.min(tonumber(ARGV[3]), capacity)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(held[1])
local ts = tonumber(held[2])
if tokens == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * per_ms)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_ms) + 60000)
return wait
"""


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
        self._redis = redis
        self._prefix = prefix
        self._rpm = requests_per_minute
        self._tpm = tokens_per_minute
        self._burst = burst_seconds
        self._max_wait = max_wait
        self._take = redis.register_script(_TAKE)

    @property
    def enabled(self) -> bool:
        return self._rpm > 0 or self._tpm > 0

    async def acquire(self, model: str, tokens: int) -> None:
        """Wait for one request and `tokens` tokens of `model`'s allowance, or raise."""
        deadline = time.monotonic() + self._max_wait
        if self._rpm > 0:
            await self._take_within(f"{self._prefix}llm:rpm:{model}", self._rpm, 1, deadline)
        if self._tpm > 0:
            await self._take_within(f"{self._prefix}llm:tpm:{model}", self._tpm, tokens, deadline)

    async def _take_within(self, key: str, per_minute: int, cost: int, deadline: float) -> None:
        capacity = max(1.0, per_minute * self._burst / 60.0)
        per_ms = per_minute / 60_000.0
        while True:
            wait_ms = int(await self._take(keys=[key], args=[capacity, per_ms, cost]))
            if wait_ms == 0:
                return
            remaining = deadline - time.monotonic()
            if wait_ms / 1000 > remaining:
                raise RateLimited(f"{key}: next slot in {wait_ms} ms, past the wait bound")
            await asyncio.sleep(wait_ms / 1000)
