"""A circuit breaker per model: stop calling a model that keeps failing, probe it later.

Closed: calls go through. Open (after `failures` consecutive failures, or a failure
rate of `failure_rate` over the last `window` calls): the model is skipped at once,
without waiting on it. After `cooldown` seconds it is half-open: exactly one probe
call goes through; its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures: int = 5,
        failure_rate: float = 0.5,
        window: int = 20,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_consecutive = failures
        self._failure_rate = failure_rate
        self._recent: deque[bool] = deque(maxlen=max(window, 1))
        self._cooldown = cooldown
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go to this model now? In half-open state only one probe may."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._recent.append(True)
        self._consecutive = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._recent.append(False)
        self._consecutive += 1
        if self._opened_at is not None:
            # A failed probe (or a late failure while open) starts a new cooldown.
            self._open()
            return
        if self._consecutive >= self._max_consecutive or self._rate_exceeded():
            self._open()

    def release_probe(self) -> None:
        """A probe that ended neither way (cancelled): let another one through."""
        self._probe_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probe_in_flight = False
        self._recent.clear()

    def _rate_exceeded(self) -> bool:
        calls = len(self._recent)
        if calls < max(self._recent.maxlen or 1, 2) // 2:
            return False
        failed = sum(1 for ok in self._recent if not ok)
        return failed / calls >= self._failure_rate
