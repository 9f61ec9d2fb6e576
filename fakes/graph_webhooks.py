"""Meta-shaped message *status* webhooks, signed like Meta signs them.

Mirrors the WhatsApp Cloud API "messages" webhook (``field: "messages"``,
``value.statuses[]``) described in Meta's webhook reference
(developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components) and the
payload signing described in "Webhooks > Verify payloads": an HMAC-SHA256 of
the raw request body keyed with the app secret, sent as
``X-Hub-Signature-256: sha256=<hex>`` (plus the legacy SHA-1 ``X-Hub-Signature``).

Not mirrored: Meta retries failed deliveries with backoff for days; the fake
tries once and logs the failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

# Statuses whose webhooks carry conversation/pricing objects on Meta's side.
_BILLED_STATUSES = frozenset({"sent", "delivered"})


def status_error(code: int, title: str, details: str | None = None) -> dict[str, Any]:
    """One entry of ``statuses[].errors`` as Meta sends it for a failed message."""
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details or title},
        "href": ERROR_CODES_HREF,
    }


def status_payload(
    *,
    waba_id: str,
    display_phone_number: str,
    phone_number_id: str,
    wamid: str,
    status: str,
    recipient_id: str,
    biz_opaque_callback_data: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """Build the full webhook body for one status change of one message."""
    stamp = int(time.time()) if timestamp is None else timestamp
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(stamp),
        "recipient_id": recipient_id,
    }
    if status in _BILLED_STATUSES:
        entry["conversation"] = {
            "id": f"conv-{recipient_id}",
            # Meta only sends expiration_timestamp on the first "sent".
            "expiration_timestamp": str(stamp + 24 * 3600),
            "origin": {"type": "service"},
        }
        entry["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    # Meta echoes the opaque data only when the send carried it.
    if biz_opaque_callback_data is not None:
        entry["biz_opaque_callback_data"] = biz_opaque_callback_data
    if errors:
        entry["errors"] = list(errors)
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display_phone_number,
                                "phone_number_id": phone_number_id,
                            },
                            "statuses": [entry],
                        },
                    }
                ],
            }
        ],
    }


def encode_like_meta(payload: dict[str, Any]) -> bytes:
    """Serialise as Meta does: compact, ASCII-only (``\\uXXXX``), ``/`` escaped.

    The odd escaping is deliberate: a receiver that re-serialises the parsed
    JSON instead of hashing the raw bytes computes the wrong signature, as it
    would in production.
    """
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    return text.replace("/", "\\/").encode("ascii")


def signature_headers(body: bytes, app_secret: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
    if app_secret is not None:
        key = app_secret.encode()
        sha256 = hmac.new(key, body, hashlib.sha256).hexdigest()
        sha1 = hmac.new(key, body, hashlib.sha1).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={sha256}"
        headers["X-Hub-Signature"] = f"sha1={sha1}"
    return headers


# Meta retries a webhook the receiver did not answer 200, with growing pauses, for up to
# seven days; a receiver that answers 503 while its database restarts relies on it.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_PAUSE_SECONDS = 30.0
RETRY_FOR_SECONDS = 7 * 24 * 3600.0
SEND_CONNECTIONS = 1000


class WebhookSender:
    """POSTs signed webhooks; background sends are tracked so shutdown cancels them.

    Background deliveries are retried as Meta retries them: each one until the receiver
    answers 200, pausing longer each time, for up to ``retry_for`` seconds.
    """

    def __init__(
        self,
        url: str | None,
        app_secret: str | None,
        timeout: float = 10.0,
        retry_for: float = RETRY_FOR_SECONDS,
    ) -> None:
        # None disables automatic statuses; explicit posts then fail loudly.
        self.url = url
        self.app_secret = app_secret
        self.retry_for = retry_for
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def post(self, payload: dict[str, Any]) -> int:
        """Deliver one webhook now; returns the receiver's HTTP status."""
        if self.url is None:
            raise RuntimeError("no status webhook URL configured")
        body = encode_like_meta(payload)
        if self._session is None or self._session.closed:
            # Meta delivers many webhooks at once; aiohttp's default of 100 connections
            # made this fake queue its own statuses past their timeout under load.
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=SEND_CONNECTIONS)
            )
        headers = signature_headers(body, self.app_secret)
        async with self._session.post(self.url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    def post_in_background(self, payloads: Sequence[dict[str, Any]]) -> None:
        """Deliver ``payloads`` in order without delaying the API response."""
        task = asyncio.create_task(self._post_all(list(payloads)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background deliveries queued so far (tests use this)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post_all(self, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            await self._post_until_taken(payload)

    async def _post_until_taken(self, payload: dict[str, Any]) -> None:
        give_up_at = time.monotonic() + self.retry_for
        pause = RETRY_FIRST_SECONDS
        while True:
            try:
                status = await self.post(payload)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("status webhook to %s failed: %r", self.url, exc)
            else:
                if status == 200:
                    return
                log.warning("status webhook to %s answered HTTP %s", self.url, status)
            if time.monotonic() + pause > give_up_at:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_PAUSE_SECONDS)
