"""OpenRouter (or any OpenAI-compatible endpoint) with retries, fallbacks, breakers and limits.

https://openrouter.ai/docs/api-reference/chat-completion: POST {base}/api/v1/chat/completions
with a bearer key, the optional HTTP-Referer and X-Title headers, and model, messages,
max_tokens, temperature. Per model: a shared rate limit, retries with exponential backoff
and jitter on 5xx, timeouts and connection errors, Retry-After honoured on 429, no retry on
other 4xx or on an unusable body. Then the next model. Then the polite message.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp
import orjson
import structlog

from actors.http import HttpClient, HttpPool
from actors.llm.breaker import CircuitBreaker
from actors.llm.chat import POLITE_FAILURE
from actors.llm.context import LLMProfile, build_messages, estimate_tokens
from actors.llm.metrics import BREAKER_VALUE, LLMMetrics
from actors.llm.ratelimit import ClusterRateLimiter, RateLimited
from actors.wire import LLMRequest, LLMResult
from config import Settings

log = structlog.get_logger(__name__)
_JSON = {"Content-Type": "application/json"}


class ModelFailed(Exception):
    """This model could not answer this request; the next model may."""

    def __init__(
        self,
        outcome: str,
        detail: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.retryable = retryable
        self.retry_after = retry_after
        self.tries = 1


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from API gateways; treat as unknown


def _backoff(tries: int) -> float:
    """Full jitter after the `tries`-th failure: uniform up to 0.25 s doubling, at most 4 s."""
    return random.uniform(0.0, min(4.0, 0.25 * 2 ** (tries - 1)))


class OpenRouterClient:
    def __init__(
        self, settings: Settings, limiter: ClusterRateLimiter, metrics: LLMMetrics
    ) -> None:
        assert settings.openrouter_api_key is not None
        self._s = settings
        self._limiter = limiter
        self._metrics = metrics
        self._breakers: dict[str, CircuitBreaker] = {}
        self._url = settings.openrouter_base_url.rstrip("/") + "/api/v1/chat/completions"
        self._headers = {
            "Authorization": f"Bearer {settings.openrouter_api_key.get_secret_value()}",
            "HTTP-Referer": "https://github.com/wa-support/wa-support",
            "X-Title": "wa-support",
        }
        # aiohttp, the one client stack (actors.http): httpcore's pool collapses with
        # hundreds of requests in flight (encode/httpcore#1035; BENCHMARKS.md "LLM pool").
        self._http = HttpClient(
            headers=self._headers,
            timeout=settings.llm_timeout_seconds,
            pool=HttpPool.for_llm(settings),
        )

    async def close(self) -> None:
        await self._http.close()

    def breaker(self, model: str) -> CircuitBreaker:
        if model not in self._breakers:
            self._breakers[model] = CircuitBreaker(
                failures=self._s.llm_breaker_failures,
                failure_rate=self._s.llm_breaker_failure_rate,
                window=self._s.llm_breaker_window,
                cooldown=self._s.llm_breaker_cooldown_seconds,
            )
        return self._breakers[model]

    def breaker_states(self) -> dict[str, str]:
        for model in self._breakers:
            self._publish_breaker(model)
        return {model: b.state.value for model, b in self._breakers.items()}

    def _publish_breaker(self, model: str) -> None:
        self._metrics.breaker.labels(model).set(BREAKER_VALUE[self.breaker(model).state])

    async def reply(self, request: LLMRequest, profile: LLMProfile) -> LLMResult:
        started = time.monotonic()
        deadline = started + self._s.llm_reply_deadline_seconds
        attempts = 0
        errors: list[str] = []
        for position, model in enumerate(profile.models):
            breaker = self.breaker(model)
            if not breaker.allow():
                self._metrics.calls.labels(model, "circuit_open").inc()
                errors.append(f"{model}: circuit open")
                continue
            try:
                text, usage, tries = await self._ask(model, profile, request, deadline)
            except ModelFailed as exc:
                attempts += exc.tries
                breaker.record_failure()
                self._publish_breaker(model)
                errors.append(f"{model}: {exc}"[:300])
                log.warning("llm_model_failed", model=model, error=str(exc)[:300])
                continue
            except BaseException:
                breaker.release_probe()
                raise
            breaker.record_success()
            self._publish_breaker(model)
            attempts += tries
            self._account(model, usage)
            self._metrics.replies.labels("primary" if position == 0 else "fallback").inc()
            return LLMResult(
                request_id=request.request_id,
                text=text,
                ok=True,
                model=model,
                prompt_tokens=_int(usage.get("prompt_tokens")),
                completion_tokens=_int(usage.get("completion_tokens")),
                cost=_float(usage.get("cost")),
                attempts=attempts,
                latency_ms=(time.monotonic() - started) * 1000,
            )
        self._metrics.replies.labels("failed").inc()
        return LLMResult(
            request_id=request.request_id,
            text=POLITE_FAILURE,
            ok=False,
            attempts=attempts,
            latency_ms=(time.monotonic() - started) * 1000,
            error="; ".join(errors) or "no model configured",
        )

    async def _ask(
        self, model: str, profile: LLMProfile, request: LLMRequest, deadline: float
    ) -> tuple[str, dict[str, Any], int]:
        messages = build_messages(profile, request, model)
        estimate = sum(estimate_tokens(m["content"]) for m in messages) + self._s.llm_max_tokens
        # A plain loop, not tenacity's: nearly every answer comes on the first try, and
        # building the retry machinery for each request was a tenth of this actor's CPU.
        tries = 0
        while True:
            tries += 1
            try:
                text, usage = await self._call(model, messages, estimate, deadline)
                return text, usage, tries
            except ModelFailed as exc:
                exc.tries = tries
                if not exc.retryable or tries >= self._s.llm_attempts_per_model:
                    raise
                pause = exc.retry_after if exc.retry_after is not None else _backoff(tries)
                if time.monotonic() + pause >= deadline:
                    raise  # the next try would cross the reply's deadline
                await asyncio.sleep(pause)

    async def _call(
        self, model: str, messages: list[dict[str, str]], estimate: int, deadline: float
    ) -> tuple[str, dict[str, Any]]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ModelFailed("deadline", "reply deadline passed")
        try:
            async with asyncio.timeout(remaining):  # no task per request, unlike wait_for
                await self._limiter.acquire(model, estimate)
        except (RateLimited, TimeoutError) as exc:
            self._metrics.calls.labels(model, "rate_limited").inc()
            raise ModelFailed("rate_limited", str(exc)) from exc
        started = time.monotonic()
        timeout = min(self._s.llm_timeout_seconds, max(deadline - started, 0.1))
        body = orjson.dumps({
            "model": model,
            "messages": messages,
            "max_tokens": self._s.llm_max_tokens,
            "temperature": self._s.llm_temperature,
        })  # fmt: skip
        try:
            async with self._http.session().post(
                self._url, data=body, headers=_JSON, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("retry-after"))
                raw = await response.read()
        except TimeoutError as exc:
            self._metrics.calls.labels(model, "timeout").inc()
            raise ModelFailed("timeout", repr(exc), retryable=True) from exc
        except aiohttp.ClientError as exc:
            self._metrics.calls.labels(model, "connection_error").inc()
            raise ModelFailed("connection_error", repr(exc), retryable=True) from exc
        if status == 429:
            self._metrics.calls.labels(model, "http_429").inc()
            honour = retry_after is not None and retry_after <= self._s.llm_retry_after_max_seconds
            raise ModelFailed(
                "http_429",
                "rate limited by the provider",
                retryable=honour,
                retry_after=retry_after if honour else None,
            )
        if status >= 500:
            self._metrics.calls.labels(model, "http_5xx").inc()
            raise ModelFailed("http_5xx", f"HTTP {status}", retryable=True)
        if status >= 400:
            self._metrics.calls.labels(model, "http_4xx").inc()
            raise ModelFailed("http_4xx", f"HTTP {status}: {raw[:200]!r}")
        try:
            text, usage = parse_completion(orjson.loads(raw))
        except (ValueError, InvalidCompletion) as exc:
            self._metrics.calls.labels(model, "invalid").inc()
            raise ModelFailed("invalid", str(exc)[:200]) from exc
        self._metrics.calls.labels(model, "ok").inc()
        self._metrics.latency.labels(model).observe(time.monotonic() - started)
        return text, usage

    def _account(self, model: str, usage: dict[str, Any]) -> None:
        for kind in ("prompt_tokens", "completion_tokens"):
            if (count := _int(usage.get(kind))) is not None:
                self._metrics.tokens.labels(model, kind.removesuffix("_tokens")).inc(count)
        if (cost := _float(usage.get("cost"))) is not None:
            self._metrics.cost.labels(model).inc(cost)


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class InvalidCompletion(ValueError):
    """A 200 answer that is not a usable chat completion (empty, null, HTML, cut off)."""


def parse_completion(body: Any) -> tuple[str, dict[str, Any]]:
    """Return the reply text and the usage block, or raise InvalidCompletion."""
    if not isinstance(body, dict):
        raise InvalidCompletion("body is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidCompletion("no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise InvalidCompletion("empty or missing message content")
    usage = body.get("usage")
    return content.strip(), usage if isinstance(usage, dict) else {}
