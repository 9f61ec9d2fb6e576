"""GET /api/health: readiness. Each part is checked with a deadline; 503 names what failed.

Liveness (GET /health) stays trivial: a process that answers is alive, even when
Postgres is down and it must not yet take traffic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from config.vocabulary import ProviderName
from gateway.api.routing import Call, Endpoint, json_response
from gateway.auth import authenticate
from gateway.observer_access import may_observe
from gateway.state import Services
from store import probes

CHECK_TIMEOUT_SECONDS = 3.0


class Check(BaseModel):
    ok: bool
    ms: float
    detail: str | None = None


class Health(BaseModel):
    status: str
    # The detail: only for OBSERVABILITY_NETWORKS, METRICS_TOKEN or a logged-in operator.
    failing: list[str] | None = None
    checks: dict[str, Check] | None = None
    llm_breakers: dict[str, str] | None = None


async def _timed(work: Awaitable[str | None]) -> Check:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(work, CHECK_TIMEOUT_SECONDS)
        return Check(ok=True, ms=_ms(started), detail=detail)
    except Exception as exc:
        # The exception's type only: connection errors can carry DSNs with passwords.
        return Check(ok=False, ms=_ms(started), detail=type(exc).__name__)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _postgres(services: Services) -> str | None:
    pool = await services.pools.get()
    async with pool.acquire() as conn:
        await probes.postgres_ping(conn)
    return None


async def _redis(services: Services) -> str | None:
    if services.redis is None:
        raise RuntimeError("not configured")
    await probes.redis_ping(services.redis)
    return None


async def _actors(services: Services) -> str | None:
    actors = services.actors
    if actors is None:
        return "no actor handles attached to this gateway process"
    await actors.ping()
    return actors.describe()


async def llm_breakers(services: Services) -> dict[str, str] | None:
    """Breaker state per model, as each LLM actor reports it (`LLMPool.health()`)."""
    if services.actors is None:
        return None
    try:
        reports = await services.actors.llm_health(wait=CHECK_TIMEOUT_SECONDS)
    except Exception:
        return None  # the actors check above names the failure
    states: dict[str, str] = {}
    for reported in reports:
        states.update({str(k): str(v) for k, v in dict(reported.get("breakers") or {}).items()})
    return states


async def _delivery(services: Services) -> str | None:
    settings = services.settings
    match settings.delivery_provider:
        case ProviderName.SANDBOX:
            if settings.is_production:
                raise RuntimeError("sandbox delivery in production")
            return "sandbox"
        case ProviderName.MSG91:
            return f"msg91, number {settings.msg91_sender_id}"
        case ProviderName.WHATSAPP_CLOUD:
            return f"whatsapp cloud api, number {settings.whatsapp_phone_number_id}"


async def readiness(call: Call) -> Any:
    services = call.services
    names = ("postgres", "redis", "actors", "delivery_provider")
    results = await asyncio.gather(
        _timed(_postgres(services)),
        _timed(_redis(services)),
        _timed(_actors(services)),
        _timed(_delivery(services)),
    )
    checks = dict(zip(names, results, strict=True))
    breakers = await llm_breakers(services)
    failing = [name for name, check in checks.items() if not check.ok]
    # One open breaker is degraded service (the fallbacks answer); all open is an outage.
    if breakers and all(state == "open" for state in breakers.values()):
        failing.append("llm_breakers")
    status = "ok" if not failing else "unavailable"
    code = 200 if not failing else 503
    principal, _ = authenticate(call.request, services.settings)
    if principal is None and not may_observe(call.request):
        # Load balancers need only the answer; which part is down is for operators.
        return web.json_response({"status": status}, status=code)
    body = Health(status=status, failing=failing, checks=checks, llm_breakers=breakers)
    return json_response(body, code)


ENDPOINTS = [
    Endpoint("GET", "/api/health", readiness,
             "Readiness; its detail (Postgres, Redis, Ray actors, LLM breakers, provider) for"
             " observability networks, METRICS_TOKEN or an operator",
             "observability", access="public", response=Health,
             other_responses=((503, Health),)),
]  # fmt: skip
