"""The MSG91 webhook: inbound WhatsApp messages and delivery reports.

MSG91 posts JSON to a URL set in its panel, in a shape the account configures. We accept
this default shape, and keep the mapping here, in one place:

    inbound: {"customerNumber", "integratedNumber", "customerName"?, "uuid", "ts"?,
              "contentType": "text"|..., "text"?, "direction": "inbound"}
    report:  {"requestId" (our "msg91:<id>" without the prefix), "status":
              "sent"|"delivered"|"read"|"failed", "failureReason"?, "direction": "outbound"}

The shared secret (MSG91_WEBHOOK_SECRET) comes in the `X-Msg91-Secret` header or the
`secret` query parameter (for panels that only take a URL).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web

from config.vocabulary import MessageStatus, ProviderName
from gateway.ingest import StoreUnavailable
from gateway.state import SERVICES
from gateway.whatsapp import ParsedWebhook
from store.records import InboundMessage, StatusUpdate

log = structlog.get_logger(__name__)
PATH = "/api/webhooks/msg91"
PROVIDER = ProviderName.MSG91
_STATUSES = {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED}


def _when(raw: object) -> datetime:
    try:
        value = float(str(raw))
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.now(tz=UTC)


def parse(event: dict[str, Any]) -> ParsedWebhook:
    """Map one MSG91 event to our records; raise ValueError naming what is missing."""
    parsed = ParsedWebhook()
    if str(event.get("direction", "inbound")).lower() == "outbound" or "requestId" in event:
        status = str(event.get("status", "")).lower()
        request_id = event.get("requestId") or event.get("uuid")
        if not request_id or status not in _STATUSES:
            raise ValueError("a delivery report needs requestId and a known status")
        parsed.statuses.append(
            StatusUpdate(
                provider_message_id=f"msg91:{request_id}",
                status=status,
                timestamp=_when(event.get("ts")),
                recipient=str(event.get("customerNumber") or "") or None,
                error_title=str(event["failureReason"]) if event.get("failureReason") else None,
            )
        )
        return parsed
    missing = [k for k in ("customerNumber", "integratedNumber", "uuid") if not event.get(k)]
    if missing:
        raise ValueError(f"an inbound message needs {', '.join(missing)}")
    kind = str(event.get("contentType") or "text").lower()
    parsed.messages.append(
        InboundMessage(
            provider=PROVIDER,
            provider_message_id=f"msg91:{event['uuid']}",
            business_number=str(event["integratedNumber"]).lstrip("+"),
            customer_phone=str(event["customerNumber"]).lstrip("+"),
            type=kind,
            text=str(event["text"]) if event.get("text") is not None else None,
            payload=event,
            timestamp=_when(event.get("ts")),
            customer_name=str(event["customerName"]) if event.get("customerName") else None,
        )
    )
    return parsed


async def receive(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    secret = services.settings.msg91_webhook_secret
    if secret is None or not secret.get_secret_value():
        return _error(404, "MSG91 is not configured")
    given = request.headers.get("X-Msg91-Secret") or request.query.get("secret")
    if not given:
        return _error(401, "missing MSG91 webhook secret")
    # surrogateescape: a header of arbitrary bytes is a wrong secret, never a 500.
    if not hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), secret.get_secret_value().encode()
    ):
        return _error(403, "wrong MSG91 webhook secret")
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _error(400, f"malformed JSON: {exc}")
    events = body if isinstance(body, list) else [body]
    parsed = ParsedWebhook()
    try:
        for event in events:
            if not isinstance(event, dict):
                raise ValueError("each event must be a JSON object")
            one = parse(event)
            parsed.messages.extend(one.messages)
            parsed.statuses.extend(one.statuses)
    except ValueError as exc:
        return _error(400, str(exc))
    try:
        new_items = await services.ingest.submit(parsed)
    except StoreUnavailable:
        return _error(503, "message store unavailable, retry later")
    return web.json_response(
        {
            "stored": len(new_items),
            "duplicates": len(parsed.messages) - len(new_items),
            "statuses": len(parsed.statuses),
        }
    )


def _error(status: int, reason: str) -> web.Response:
    log.warning("msg91_webhook_rejected", status=status, reason=reason[:200])
    return web.json_response({"error": reason}, status=status)
