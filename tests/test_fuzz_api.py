"""The operator API fuzzed from its own OpenAPI document (schemathesis): for generated
valid and invalid requests, never a 5xx, and every answer matches the documented status
codes, media types and response schemas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from redis.asyncio import Redis
from schemathesis import APIOperation, CheckFunction, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from actors.client import ActorClient
from actors.conversation.router import ShardRouter
from config import Settings
from fakes.server import FakeServer
from gateway.app import create_app
from store import app_settings
from tests.api_fixtures import Operator

# Streams never end, so a request/response fuzzer cannot judge them.
SKIP = {("GET", "/api/events")}
EXAMPLES_PER_OPERATION = 10


@pytest_asyncio.fixture
async def fuzz_url(
    settings: Settings, actors: ActorClient, database_url: str, redis_url: str, redis: Redis
) -> AsyncIterator[str]:
    """A gateway with its own Redis prefix: fuzzed logins lock out nobody else, and fuzzed
    settings never reach the LLM actors, which follow the session's prefix. Other tests
    leave stored messages unanswered on purpose; the webhook health check would rightly
    answer 503 for their age, so its bound is out of reach here (tested on its own)."""
    prefix = f"wa-test-fuzz-{uuid.uuid4().hex[:6]}:"
    router = ShardRouter(actors.shards, max_batch=100, max_delay=0.003)
    app = create_app(
        settings.model_copy(
            update={"redis_key_prefix": prefix, "webhook_backlog_max_age_seconds": 1e9}
        ),
        router,
        database_url=database_url,
        redis_url=redis_url,
        actors=actors,
    )
    async with FakeServer(app) as server:
        router.start()
        yield server.url
        await router.stop()
    async for key in redis.scan_iter(match=f"{prefix}*"):
        await redis.delete(key)


async def test_the_api_survives_fuzzing_from_its_own_openapi_spec(
    fuzz_url: str, admin: Operator, db: object, redis: Redis, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=fuzz_url) as client:
        spec = (await client.get("/api/openapi.json", headers=admin.headers)).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if (result.ok().method.upper(), result.ok().path) not in SKIP
    ]
    assert len(operations) >= 30
    conformance = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    def run(operation: APIOperation, mode: GenerationMode, checks: list[CheckFunction]) -> None:
        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def one(case: schemathesis.Case) -> None:
            response = case.call(base_url=fuzz_url, headers=admin.headers, timeout=30)
            case.validate_response(response, checks=checks)

        one()

    def fuzz() -> list[str]:
        failures: list[str] = []
        for operation in operations:
            for mode, checks in (
                (GenerationMode.POSITIVE, conformance),
                (GenerationMode.NEGATIVE, [not_a_server_error]),
            ):
                try:
                    run(operation, mode, checks)
                except Unsatisfiable:
                    continue  # no inputs to make invalid: nothing to fuzz negatively
                except Exception as exc:
                    failures.append(
                        f"{operation.method.upper()} {operation.path} "
                        f"[{mode.value}]: {str(exc)[:1500]}"
                    )
        return failures

    try:
        failures = await asyncio.to_thread(fuzz)
    finally:
        # The fuzzer stored random settings; the session's actors must not meet them later.
        pool = await db.acquire()  # type: ignore[attr-defined]
        try:
            for key in (
                "system_prompt",
                "models",
                "faq",
                "flows",
                "business_hours",
                "window_template",
            ):
                await app_settings.delete(pool, redis, settings.redis_key_prefix, key)
        finally:
            await db.release(pool)  # type: ignore[attr-defined]
    assert failures == [], "\n\n".join(failures)
