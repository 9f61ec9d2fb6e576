"""The WhatsApp Cloud API webhook: verification (GET) and deliveries (POST).

POST order is the contract of DESIGN.md §1: signature, parse, store, and only then 200.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import replace

import orjson
import structlog
from aiohttp import web

from config.vocabulary import ProviderName
from gateway.draining import DRAINING, RETRY_AFTER_SECONDS
from gateway.ingest import StoreUnavailable
from gateway.metrics import WEBHOOK_ACK_SECONDS, WEBHOOK_REQUESTS
from gateway.signature import HEADER, is_valid
from gateway.state import SERVICES
from gateway.whatsapp import ParsedWebhook, parse_webhook
from gateway.whatsapp.normalize import PayloadError
from store.records import WebhookEvent

log = structlog.get_logger(__name__)
SOURCE = ProviderName.WHATSAPP_CLOUD
# The log row for this request, completed with its latency once the answer is ready.
EVENT = web.RequestKey("webhook_event", WebhookEvent)


async def verify(request: web.Request) -> web.Response:
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token matches."""
    services = request.app[SERVICES]
    mode = request.query.get("hub.mode")
    token = request.query.get("hub.verify_token")
    challenge = request.query.get("hub.challenge")
    if mode is None or token is None or challenge is None:
        return _error(400, "hub.mode, hub.verify_token and hub.challenge are required")
    if mode != "subscribe" or not hmac.compare_digest(
        token.encode(), services.settings.verify_token().encode()
    ):
        log.warning("webhook_verification_refused", mode=mode)
        return _error(403, "verification token mismatch")
    return web.Response(text=challenge, content_type="text/plain")


async def receive(request: web.Request) -> web.Response:
    started = time.perf_counter()
    response = await _receive(request)
    elapsed = time.perf_counter() - started
    outcome = response.headers.get("X-Webhook-Outcome", "unknown")
    WEBHOOK_ACK_SECONDS.observe(elapsed)
    WEBHOOK_REQUESTS.labels(SOURCE, outcome).inc()
    event = request.get(EVENT)
    if event is not None:
        event.latency_ms = elapsed * 1000
        request.app[SERVICES].ingest.log_event(event)
    return response


async def _receive(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if request.app[DRAINING].active:
        # Shutting down: nothing new is stored here; Meta delivers it again later.
        response = _reject(request, 503, "draining", "shutting down, retry later")
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response
    limit = services.settings.webhook_max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _reject(request, 413, "too_large", f"body over {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _reject(request, 413, "too_large", f"body over {limit} bytes")

    signature = request.headers.get(HEADER)
    if not signature:
        return _reject(request, 401, "bad_signature", f"missing {HEADER} header")
    if not is_valid(raw, signature, services.settings.app_secret()):
        return _reject(request, 403, "bad_signature", "signature does not match the body")

    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _reject(request, 400, "malformed", f"malformed JSON: {exc}")
    try:
        parsed = parse_webhook(body, raw)
    except PayloadError as exc:
        return _reject(request, 400, "malformed", f"not a WhatsApp webhook: {exc}")

    # The request id follows each message through the shard, the LLM pool and delivery.
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        parsed.messages = [replace(m, request_id=str(request_id)) for m in parsed.messages]
    try:
        new_items = await services.ingest.submit(parsed)
    except StoreUnavailable:
        # Never 200-and-lose: Meta retries a 5xx delivery later.
        return _reject(request, 503, "unavailable", "message store unavailable, retry later")

    stored = 0 if parsed.refused else len(new_items)
    duplicates = 0 if parsed.refused else len(parsed.messages) - len(new_items)
    if parsed.unparsed or parsed.refused:
        outcome = "partial"
    elif parsed.messages and not new_items:
        outcome = "duplicate"
    else:
        outcome = "stored"
    request[EVENT] = WebhookEvent(
        source=SOURCE,
        kind=parsed.kind,
        outcome=outcome,
        http_status=200,
        message_count=len(parsed.messages),
        status_count=len(parsed.statuses),
        detail=_detail(parsed, duplicates),
    )
    answer: dict[str, int] = {
        "stored": stored, "duplicates": duplicates, "statuses": len(parsed.statuses)
    }  # fmt: skip
    if parsed.unparsed or parsed.refused:
        answer["unparsed"] = len(parsed.unparsed) + (1 if parsed.refused else 0)
    return web.json_response(answer, headers={"X-Webhook-Outcome": outcome})


def _detail(parsed: ParsedWebhook, duplicates: int) -> str | None:
    """What an operator reads in the log: duplicates, unparsed parts and why, Meta's errors."""
    parts: list[str] = []
    if duplicates:
        parts.append(f"{duplicates} duplicate(s)")
    if parsed.past:
        parts.append(f"{len(parsed.past)} past message(s), not answered")
    if parsed.unparsed:
        reasons = "; ".join(f"{u.field}: {u.error}" for u in parsed.unparsed[:3])
        parts.append(f"{len(parsed.unparsed)} unparsed ({reasons})")
    if parsed.refused:
        parts.append(f"kept raw: {parsed.refused}")
    if parsed.errors:
        parts.append("errors: " + "; ".join(parsed.errors[:3]))
    return " · ".join(parts)[:500] or None


def _reject(request: web.Request, status: int, outcome: str, reason: str) -> web.Response:
    log.warning("webhook_rejected", status=status, outcome=outcome, reason=reason[:200])
    request[EVENT] = WebhookEvent(
        source=SOURCE, kind="unknown", outcome=outcome, http_status=status, detail=reason[:200]
    )
    return _error(status, reason, outcome)


def _error(status: int, reason: str, outcome: str = "rejected") -> web.Response:
    return web.json_response(
        {"error": reason}, status=status, headers={"X-Webhook-Outcome": outcome}
    )
