"""Send pacing that Meta's limits require, shared across every delivery actor via Redis.

- Throughput per business number: 80 messages/s by default, up to 1,000 after an upgrade;
  past it Meta answers error 130429.
- Pair rate per recipient: about 1 message every 6 s to the same user, with bursts
  allowed; past it Meta answers error 131056.
(https://developers.facebook.com/docs/whatsapp/cloud-api/overview#throughput)

The tokens are store.rate_bucket's: one atomic script call per bucket and part. The
parts asking in one turn of the loop send their calls in one pipeline (issue 13); Redis
runs each script on its own, in order, just as it would the same calls arriving one by
one, so the rates, the bursts and the wait bound are the same.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from actors.delivery.batched_ledger import Batched
from store.rate_bucket import _TAKE, OverLimit


class PacingTimeout(Exception):
    """A send waited longer than the pacing bound: retry later rather than hold the line."""


# (bucket key, capacity, tokens per millisecond)
_Take = tuple[str, float, float]


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
        self._redis = redis
        self._script = redis.register_script(_TAKE)
        self._takes: Batched[_Take, int] = Batched(self._take_many)
        self._prefix = prefix
        self._per_second = per_second
        self._pair_interval = pair_interval
        self._pair_burst = pair_burst
        self._max_wait = max_wait

    async def wait_turn(self, business_number: str, recipient: str) -> None:
        deadline = time.monotonic() + self._max_wait
        try:
            if self._pair_interval > 0:
                await self._take(
                    f"{self._prefix}pace:pair:{business_number}:{recipient}",
                    per_second=1.0 / self._pair_interval,
                    capacity=self._pair_burst,
                    deadline=deadline,
                )
            if self._per_second > 0:
                # A burst of a tenth of a second keeps sends smooth, as Meta measures them.
                await self._take(
                    f"{self._prefix}pace:number:{business_number}",
                    per_second=self._per_second,
                    capacity=max(1.0, self._per_second / 10),
                    deadline=deadline,
                )
        except OverLimit as exc:
            raise PacingTimeout(str(exc)) from exc

    async def _take(self, key: str, *, per_second: float, capacity: float, deadline: float) -> None:
        """One token, slept for until `deadline` (monotonic), as RedisTokenBucket.take."""
        per_ms = per_second / 1000.0
        while True:
            wait_ms = await self._takes((key, max(capacity, 1), per_ms))
            if wait_ms == 0:
                return
            if time.monotonic() + wait_ms / 1000 > deadline:
                raise OverLimit(f"{key}: next slot in {wait_ms} ms, past the wait bound")
            await asyncio.sleep(wait_ms / 1000)

    async def _take_many(self, asked: list[_Take]) -> list[int]:
        waits: list[int | None] = [None] * len(asked)
        todo = list(range(len(asked)))
        for _ in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    key, capacity, per_ms = asked[i]
                    pipe.evalsha(self._script.sha, 1, key, capacity, per_ms, 1)
                answers = await pipe.execute(raise_on_error=False)
            missing = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError):
                    missing.append(i)  # this call took nothing: it goes again
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    waits[i] = int(answer)
            if not missing:
                break
            # A restarted Redis forgot the script.
            await self._redis.script_load(_TAKE)
            todo = missing
        if any(w is None for w in waits):
            raise NoScriptError("the pacing script could not be loaded")
        return [w for w in waits if w is not None]
