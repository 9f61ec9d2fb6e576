"""A token bucket in Redis, shared by every process and node, updated by one atomic script.

The script uses the Redis server's clock, so nodes with skewed clocks still agree. It
answers how long to wait when the bucket is short, so callers sleep exactly that long.
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


class OverLimit(Exception):
    """The bucket would not have room within the caller's wait bound."""


class RedisTokenBucket:
    def __init__(self, redis: Redis) -> None:
        self._take = redis.register_script(_TAKE)

    async def take(
        self, key: str, *, per_second: float, capacity: float, cost: float = 1, deadline: float
    ) -> None:
        """Take `cost` tokens, sleeping for them until `deadline` (monotonic), or raise."""
        per_ms = per_second / 1000.0
        while True:
            wait_ms = int(await self._take(keys=[key], args=[max(capacity, 1), per_ms, cost]))
            if wait_ms == 0:
                return
            if time.monotonic() + wait_ms / 1000 > deadline:
                raise OverLimit(f"{key}: next slot in {wait_ms} ms, past the wait bound")
            await asyncio.sleep(wait_ms / 1000)
