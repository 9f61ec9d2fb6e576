"""The LLM pool against the OpenRouter fake over real HTTP, with real Redis and Postgres.

Most tests drive an LLMPool object in this process, so each gets its own breakers; the
shared rate limit is tested across two real Ray actors.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import ray
from redis.asyncio import Redis

from actors.llm.breaker import BreakerState, CircuitBreaker
from actors.llm.context import LLMProfile, build_messages, trim_history
from actors.llm.pool import LLMPool
from actors.runtime import _actor_class
from actors.wire import LLMRequest, LLMResult
from config import Settings
from fakes.openrouter import OpenRouterFake
from store import app_settings
from store.records import Turn

PRIMARY = "pool/primary"
FALLBACK = "pool/fallback"
_ids = iter(range(10**9))

PoolFactory = Callable[..., Any]


@pytest_asyncio.fixture
async def make_pool(
    settings: Settings, database_url: str, redis_url: str
) -> AsyncIterator[PoolFactory]:
    pools: list[LLMPool] = []

    def make(**overrides: Any) -> LLMPool:
        values: dict[str, Any] = {
            "openrouter_primary_model": PRIMARY,
            "openrouter_fallback_model": [FALLBACK],
            "llm_breaker_failures": 5,
            "llm_breaker_failure_rate": 0.5,
            "llm_timeout_seconds": 1.0,
            "settings_refresh_seconds": 0.0,
        }
        values.update(overrides)
        pool = LLMPool(settings.model_copy(update=values), database_url, redis_url)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


async def ask(pool: LLMPool, text: str, history: tuple[Turn, ...] = ()) -> LLMResult:
    async for chunk in pool.complete([LLMRequest(next(_ids), history, text)]):
        return chunk[0]
    raise AssertionError("the pool yielded nothing")


async def test_a_429_with_retry_after_is_retried_after_about_that_long_then_succeeds(
    make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    openrouter.fail_next(1, "429", model=PRIMARY, retry_after=1)
    started = time.monotonic()
    result = await ask(make_pool(), "busy?")
    assert result.ok and result.model == PRIMARY and result.text == "Echo: busy?"
    assert 0.9 <= time.monotonic() - started < 3
    assert len(openrouter.requests_for(PRIMARY)) == 2


async def test_a_500_is_retried_then_falls_back_to_the_second_model(
    make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    openrouter.fail_next(2, "500", model=PRIMARY)
    result = await ask(make_pool(llm_attempts_per_model=2), "server error")
    assert result.model == FALLBACK and result.text == "Echo: server error"
    assert len(openrouter.requests_for(PRIMARY)) == 2
    assert result.attempts == 3


async def test_a_timeout_falls_back(make_pool: PoolFactory, openrouter: OpenRouterFake) -> None:
    openrouter.fail_next(1, "timeout", model=PRIMARY)
    started = time.monotonic()
    result = await ask(make_pool(llm_attempts_per_model=1, llm_timeout_seconds=0.5), "slow")
    assert result.model == FALLBACK and result.text == "Echo: slow"
    assert time.monotonic() - started < 3


async def test_another_4xx_is_not_retried_and_goes_to_the_next_model(
    make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    openrouter.fail_next(1, "402", model=PRIMARY)
    result = await ask(make_pool(llm_attempts_per_model=3), "no credits")
    assert result.model == FALLBACK
    assert len(openrouter.requests_for(PRIMARY)) == 1


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("malformed_json", None),
        ("empty_choices", None),
        ("null_content", None),
        ("html", 200),
        ("html", 502),
    ],
)
async def test_an_unusable_answer_falls_back_and_never_reaches_the_customer(
    kind: str, status: int | None, make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    openrouter.fail_next(2, kind, model=PRIMARY, status=status)
    result = await ask(make_pool(llm_attempts_per_model=2), "is this usable?")
    assert result.ok and result.model == FALLBACK
    assert result.text == "Echo: is this usable?"


async def test_every_model_failing_gives_the_polite_message(
    make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    openrouter.fail_next(1, "503", model=PRIMARY)
    openrouter.fail_next(1, "empty_choices", model=FALLBACK)
    result = await ask(make_pool(llm_attempts_per_model=1), "anyone?")
    assert not result.ok and result.model is None
    assert "follow up" in result.text and "Traceback" not in result.text


async def test_the_breaker_opens_after_n_failures_skips_the_model_and_half_opens_later(
    make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    pool = make_pool(
        llm_attempts_per_model=1, llm_breaker_failures=3, llm_breaker_cooldown_seconds=1.0
    )
    openrouter.fail_next(3, "500", model=PRIMARY)
    for _ in range(3):
        assert (await ask(pool, "fail")).model == FALLBACK
    assert (await pool.health())["breakers"][PRIMARY] == "open"

    calls = len(openrouter.requests_for(PRIMARY))
    openrouter.set_latency(2.0, model=PRIMARY)  # would be felt if the primary were called
    started = time.monotonic()
    assert (await ask(pool, "skip it")).model == FALLBACK
    assert time.monotonic() - started < 1.0
    assert len(openrouter.requests_for(PRIMARY)) == calls

    openrouter.set_latency(0.0, model=PRIMARY)
    await asyncio.sleep(1.1)
    assert (await pool.health())["breakers"][PRIMARY] == "half_open"
    assert (await ask(pool, "probe")).model == PRIMARY
    assert (await pool.health())["breakers"][PRIMARY] == "closed"


def test_a_half_open_breaker_lets_one_probe_through_and_a_high_failure_rate_opens_it() -> None:
    now = [0.0]
    breaker = CircuitBreaker(
        failures=100, failure_rate=0.5, window=10, cooldown=5, clock=lambda: now[0]
    )
    for ok in [True, True, False, True, False]:
        breaker.record_success() if ok else breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED  # 2 of 5 calls failed: under 50%
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN  # 3 of 6: the rate opens it, not a streak
    assert not breaker.allow()
    now[0] = 5.0
    assert breaker.allow() and not breaker.allow()  # one probe only
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    now[0] = 10.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow() and breaker.allow()


async def test_past_its_rate_limit_wait_a_request_goes_to_the_next_model(
    make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    pool = make_pool(
        openrouter_primary_model=f"rl/{uuid.uuid4().hex[:6]}",
        llm_requests_per_minute=1,
        llm_rate_burst_seconds=1,
        llm_rate_max_wait_seconds=0.3,
    )
    first, second = await ask(pool, "one"), await ask(pool, "two")
    assert first.model != FALLBACK
    assert second.model == FALLBACK


async def test_a_model_without_system_messages_gets_the_prompt_in_the_first_user_turn(
    make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    pool = make_pool(llm_no_system_models=[PRIMARY])
    history = (Turn("user", "hi"), Turn("assistant", "hello!"))
    await ask(pool, "what do you sell?", history)
    messages = openrouter.requests_for(PRIMARY)[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"].startswith("You are a friendly")
    assert messages[0]["content"].endswith("\n\nhi")
    assert "Demo Store" in messages[0]["content"]


def test_context_trimming_keeps_the_newest_turns_within_the_budget(settings: Settings) -> None:
    history = [
        Turn("user" if i % 2 == 0 else "assistant", f"turn {i:02d} " + "x" * 36) for i in range(10)
    ]
    kept = trim_history(history, budget=36)  # each turn is 12 estimated tokens
    assert [t.text[:7] for t in kept] == ["turn 07", "turn 08", "turn 09"]
    profile = LLMProfile.from_settings(settings.model_copy(update={"llm_context_token_budget": 36}))
    messages = build_messages(profile, LLMRequest(1, tuple(history), "now"), "any/model")
    assert [m["content"][:7] for m in messages[1:]] == ["turn 07", "turn 08", "turn 09", "now"]


async def test_operator_edited_prompt_and_models_apply_without_a_restart(
    make_pool: PoolFactory,
    openrouter: OpenRouterFake,
    db: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
) -> None:
    pool = make_pool()
    await ask(pool, "before")
    prefix = settings.redis_key_prefix
    async with db.acquire() as conn:
        await app_settings.put(conn, redis, prefix, "system_prompt", "You are Tess of Demo Store.")
        await app_settings.put(
            conn, redis, prefix, "models", {"primary": "edited/model", "fallbacks": []}
        )
    try:
        result = await ask(pool, "after")
        assert result.model == "edited/model"
        sent = openrouter.requests_for("edited/model")[-1].body["messages"]
        assert sent[0]["content"].startswith("You are Tess of Demo Store.")
    finally:
        async with db.acquire() as conn:
            await app_settings.delete(conn, redis, prefix, "system_prompt")
            await app_settings.delete(conn, redis, prefix, "models")


async def test_metrics_count_calls_by_model_and_outcome_with_tokens_and_breaker_state(
    make_pool: PoolFactory, openrouter: OpenRouterFake
) -> None:
    pool = make_pool(llm_attempts_per_model=1)
    openrouter.fail_next(1, "500", model=PRIMARY)
    await ask(pool, "count me")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in await pool.metric_families()
        for s in family.samples
    }
    assert samples[("wa_llm_calls_total", (("model", PRIMARY), ("outcome", "http_5xx")))] == 1
    assert samples[("wa_llm_calls_total", (("model", FALLBACK), ("outcome", "ok")))] == 1
    assert samples[("wa_llm_replies_total", (("result", "fallback"),))] == 1
    assert samples[("wa_llm_tokens_total", (("kind", "completion"), ("model", FALLBACK)))] > 0
    assert samples[("wa_llm_breaker_state", (("model", PRIMARY),))] == 0
    assert samples[("wa_llm_latency_seconds_count", (("model", FALLBACK),))] == 1


async def test_two_llm_actors_share_one_requests_per_minute_limit(
    settings: Settings,
    ray_cluster: None,
    database_url: str,
    redis_url: str,
    openrouter: OpenRouterFake,
) -> None:
    model = f"shared/{uuid.uuid4().hex[:6]}"
    limited = settings.model_copy(
        update={
            "openrouter_primary_model": model,
            "openrouter_fallback_model": [],
            "llm_requests_per_minute": 60,
            "llm_rate_burst_seconds": 1,  # a bucket of one request: at most 1/s sustained
            "llm_rate_max_wait_seconds": 120,
            "llm_reply_deadline_seconds": 120,
        }
    )
    actor = _actor_class(LLMPool).options(num_cpus=0, max_concurrency=1000)
    pools = [actor.remote(limited, database_url, redis_url) for _ in range(2)]
    try:
        await asyncio.gather(*(p.ping.remote() for p in pools))
        started = time.monotonic()
        # Both actors have far more waiting than the limit lets through in 20 s.
        streams = [
            p.complete.remote([LLMRequest(next(_ids), (), f"q{i}") for i in range(40)])
            for p in pools
        ]
        consumers = [asyncio.ensure_future(_drain(s)) for s in streams]
        await asyncio.sleep(20)
        sent = openrouter.requests_for(model)
        elapsed = time.monotonic() - started
        for c in consumers:
            c.cancel()
        allowed = 1 + elapsed  # the burst, then one a second
        assert len(sent) <= allowed + 2, f"{len(sent)} requests in {elapsed:.1f} s"
        assert len(sent) >= allowed - 5, "the limit, not something else, held them back"
    finally:
        for p in pools:
            ray.kill(p)


async def _drain(stream: Any) -> None:
    async for ref in stream:
        await ref
