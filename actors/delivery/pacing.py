"""Send pacing that Meta's limits require, shared across every delivery actor via Redis.

- Throughput per business number: 80 messages/s by default, up to 1,000 after an upgrade;
  past it Meta answers error 130429.
- Pair rate per recipient: about 1 message every 6 s to the same user, with bursts
  allowed; past it Meta answers error 131056.
(https://developers.facebook.com/docs/whatsapp/cloud-api/overview#throughput)
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from store.rate_bucket import OverLimit, RedisTokenBucket


class PacingTimeout(Exception):
    """A send waited longer than the pacing bound: retry later rather than hold the line."""


class SendPacer:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        per_second: float = 80.0,
        pair_interval: float = 6.0,
        pair_burst: int = 10,
        max_wait: float = 120.0,
    ) -> None:
        self._bucket = RedisTokenBucket(redis)
        self._prefix = prefix
        self._per_second = per_second
        self._pair_interval = pair_interval
        self._pair_burst = pair_burst
        self._max_wait = max_wait

    async def wait_turn(self, business_number: str, recipient: str) -> None:
        deadline = time.monotonic() + self._max_wait
        try:
            if self._pair_interval > 0:
                await self._bucket.take(
                    f"{self._prefix}pace:pair:{business_number}:{recipient}",
                    per_second=1.0 / self._pair_interval,
                    capacity=self._pair_burst,
                    deadline=deadline,
                )
            if self._per_second > 0:
                # A burst of a tenth of a second keeps sends smooth, as Meta measures them.
                await self._bucket.take(
                    f"{self._prefix}pace:number:{business_number}",
                    per_second=self._per_second,
                    capacity=max(1.0, self._per_second / 10),
                    deadline=deadline,
                )
        except OverLimit as exc:
            raise PacingTimeout(str(exc)) from exc
