"""Admin diagnostics: each says what it did and how long it took, and shows no secret."""

from __future__ import annotations

import random
import time

from pydantic import BaseModel, Field

from actors.delivery.providers import OutboundMessage, SendError, make_provider
from actors.wire import Content, LLMRequest
from gateway.api.routing import ApiError, Call, Endpoint
from gateway.signature import HEADER
from store import probes

TEST_TIMEOUT_SECONDS = 60.0


class Step(BaseModel):
    name: str
    ok: bool
    ms: float
    detail: str | None = None


class DbTestOut(BaseModel):
    ok: bool
    steps: list[Step]


class LlmTestBody(BaseModel):
    prompt: str = Field(default="Say hello in one short sentence.", min_length=1, max_length=2000)


class LlmTestOut(BaseModel):
    ok: bool
    model: str | None
    reply: str
    attempts: int
    ms: float
    error: str | None = None


class WhatsAppTestBody(BaseModel):
    to: str = Field(pattern=r"^[1-9][0-9]{6,14}$", description="E.164 digits, no +")
    text: str = Field(default="Test message from wa-support.", min_length=1, max_length=4096)


class WhatsAppTestOut(BaseModel):
    ok: bool
    provider: str
    provider_message_id: str | None
    ms: float
    error_code: int | None = None
    error: str | None = None


class Instructions(BaseModel):
    webhook_url: str
    signature_header: str
    steps: list[str]
    example: str


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def db_test(call: Call) -> DbTestOut:
    services = call.services
    steps: list[Step] = []
    started = time.perf_counter()
    try:
        pool = await services.pools.get()
        async with pool.acquire() as conn:
            version = await probes.postgres_version(conn)
        steps.append(Step(name="postgres: SELECT", ok=True, ms=_ms(started), detail=f"v{version}"))
    except Exception as exc:
        steps.append(Step(name="postgres: SELECT", ok=False, ms=_ms(started),
                          detail=type(exc).__name__))  # fmt: skip
    started = time.perf_counter()
    try:
        await probes.redis_round_trip(services.require_redis(), services.settings.redis_key_prefix)
        steps.append(Step(name="redis: SET/GET/DEL", ok=True, ms=_ms(started)))
    except Exception as exc:
        steps.append(Step(name="redis: SET/GET/DEL", ok=False, ms=_ms(started),
                          detail=type(exc).__name__))  # fmt: skip
    return DbTestOut(ok=all(s.ok for s in steps), steps=steps)


async def test_llm(call: Call) -> LlmTestOut:
    body: LlmTestBody = call.body
    actors = call.services.actors
    if actors is None or not actors.llm:
        raise ApiError(503, "LLM actors are not attached to this gateway")
    # A negative id can never be an inbox message id, so nothing mistakes this for one.
    request = LLMRequest(request_id=-random.randint(1, 2**62), history=(), text=body.prompt)
    started = time.perf_counter()
    try:
        result = await actors.complete_one(request, wait=TEST_TIMEOUT_SECONDS)
    except Exception as exc:
        return LlmTestOut(ok=False, model=None, reply="", attempts=0, ms=_ms(started),
                          error=type(exc).__name__)  # fmt: skip
    return LlmTestOut(
        ok=result.ok,
        model=result.model,
        reply=result.text,
        attempts=result.attempts,
        ms=_ms(started),
        error=(result.error or "")[:300] or None,
    )


async def test_whatsapp(call: Call) -> WhatsAppTestOut:
    body: WhatsAppTestBody = call.body
    services = call.services
    settings = services.settings
    sandbox = settings.uses_sandbox_delivery
    if sandbox and services.sandbox_base_url is None:
        raise ApiError(503, "sandbox delivery is configured but no sandbox is attached")
    provider = make_provider(settings, sandbox_base_url=services.sandbox_base_url)
    business = settings.whatsapp_phone_number_id or settings.msg91_sender_id or "sandbox"
    started = time.perf_counter()
    try:
        wamid = await provider.send(
            OutboundMessage(business_number=business, to=body.to, content=Content.plain(body.text),
                            callback_data=f"test-{random.getrandbits(32)}")
        )  # fmt: skip
        return WhatsAppTestOut(ok=True, provider=provider.name.value,
                               provider_message_id=wamid, ms=_ms(started))  # fmt: skip
    except SendError as exc:
        return WhatsAppTestOut(ok=False, provider=provider.name.value,
                               provider_message_id=None, ms=_ms(started), error_code=exc.code,
                               error=exc.title[:300])  # fmt: skip
    finally:
        await provider.close()


async def instructions(call: Call) -> Instructions:
    request = call.request
    url = f"{request.scheme}://{request.host}/api/webhooks/whatsapp-business"
    body = (
        '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":'
        '"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":'
        '"15550001111","phone_number_id":"123456789"},"contacts":[{"profile":{"name":"Ada"},'
        '"wa_id":"15551234567"}],"messages":[{"from":"15551234567","id":"wamid.test-1",'
        '"timestamp":"1764000000","type":"text","text":{"body":"Hello"}}]}}]}]}'
    )
    example = (
        f"BODY='{body}'\n"
        'SIG=$(printf \'%s\' "$BODY" | openssl dgst -sha256 -hmac "$WHATSAPP_APP_SECRET" '
        "| sed 's/^.* //')\n"
        f"curl -s {url} -H 'Content-Type: application/json' "
        f'-H "{HEADER}: sha256=$SIG" --data-binary "$BODY"'
    )
    return Instructions(
        webhook_url=url,
        signature_header=HEADER,
        steps=[
            "Write a WhatsApp Cloud API webhook body (the example has one text message).",
            "Sign the exact bytes: hex HMAC-SHA256 with this deployment's app secret "
            "(WHATSAPP_APP_SECRET; in development, the default documented in the README).",
            f"POST it with the header {HEADER}: sha256=<hex>.",
            "Expect 200 with stored=1; posting it again gives duplicates=1 and no second reply.",
            "Watch it arrive on /dashboard/conversations and in /dashboard/webhooks.",
        ],
        example=example,
    )


ENDPOINTS = [
    Endpoint("GET", "/api/db-test", db_test, "Postgres and Redis round trips (admin)",
             "diagnostics", access="admin", response=DbTestOut),
    Endpoint("POST", "/api/test-llm", test_llm,
             "One prompt through the LLM pool; reports the model that answered (admin)",
             "diagnostics", access="admin", body=LlmTestBody, response=LlmTestOut,
             errors=(503,)),
    Endpoint("POST", "/api/test-whatsapp", test_whatsapp,
             "One test message through the configured provider (admin)", "diagnostics",
             access="admin", body=WhatsAppTestBody, response=WhatsAppTestOut, errors=(503,)),
    Endpoint("GET", "/api/test/instructions", instructions,
             "How to send a signed test webhook to this deployment (admin)", "diagnostics",
             access="admin", response=Instructions),
]  # fmt: skip
