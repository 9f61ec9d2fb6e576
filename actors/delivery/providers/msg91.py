"""MSG91 as a delivery provider behind the same interface as the Cloud API (DESIGN.md §7).

Session text goes to ``/api/v5/whatsapp/whatsapp-outbound-message/`` and templates to its
``bulk/`` endpoint, authenticated by the ``authkey`` header and sent from the
``integrated_number`` (country code and number, no "+"). MSG91 allows about 100 requests a
minute; a 429 is retried with backoff like any limit.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from actors.delivery.providers.errors import (
    OutcomeUnknown,
    SendError,
    retry_after_of,
    transport_error,
    with_retries,
)
from actors.delivery.providers.protocol import MediaFile, OutboundMessage
from actors.http import DEFAULT_POOL, HttpClient, HttpPool
from actors.wire import Content, split_text
from config.vocabulary import ProviderName

SESSION_PATH = "/api/v5/whatsapp/whatsapp-outbound-message/"
BULK_PATH = "/api/v5/whatsapp/whatsapp-outbound-message/bulk/"


class Msg91Provider:
    name: ProviderName = ProviderName.MSG91

    def __init__(
        self,
        *,
        base_url: str,
        auth_key: str,
        integrated_number: str,
        timeout: float = 15.0,
        max_attempts: int = 4,
        deadline: float = 60.0,
        pool: HttpPool = DEFAULT_POOL,
    ) -> None:
        self._number = integrated_number.lstrip("+")
        self._max_attempts = max_attempts
        self._deadline = deadline
        self._http = HttpClient(
            base_url=base_url, headers={"authkey": auth_key}, timeout=timeout, pool=pool
        )

    async def close(self) -> None:
        await self._http.close()

    async def mark_read(self, business_number: str, message_id: str) -> None:
        return None  # MSG91's session API has no read receipts for inbound messages

    async def fetch_media(self, media_id: str, max_bytes: int) -> MediaFile | None:
        return None  # MSG91's webhook carries no Graph media ids to download

    async def send(self, message: OutboundMessage) -> str:
        content = message.content
        to = message.to.lstrip("+")
        if content.kind == "template":
            return await self._post(BULK_PATH, self._template_body(content, to))
        # MSG91's session endpoint carries plain text: buttons and lists go as their text.
        ids = [
            await self._post(
                SESSION_PATH,
                {
                    "integrated_number": self._number,
                    "content_type": "text",
                    "recipient_number": to,
                    "text": part,
                },
            )
            for part in split_text(content.text)
        ]
        return ids[0]

    def _template_body(self, content: Content, to: str) -> dict[str, Any]:
        components = {
            f"body_{i}": {"type": "text", "value": value}
            for i, value in enumerate(content.template_params, start=1)
        }
        return {
            "integrated_number": self._number,
            "content_type": "template",
            "payload": {
                "messaging_product": "whatsapp",
                "type": "template",
                "template": {
                    "name": content.template_name,
                    "language": {"code": content.template_language, "policy": "deterministic"},
                    "namespace": None,
                    "to_and_components": [{"to": [to], "components": components}],
                },
            },
        }

    async def _post(self, path: str, body: dict[str, Any]) -> str:
        return await with_retries(
            lambda: self._post_once(path, body),
            max_attempts=self._max_attempts,
            deadline=self._deadline,
            backoff_max=10.0,
        )

    async def _post_once(self, path: str, body: dict[str, Any]) -> str:
        try:
            async with self._http.session().post(self._http.url(path), json=body) as response:
                status = response.status
                retry_after = retry_after_of(response.headers.get("Retry-After"))
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc) from exc
        try:
            data = orjson.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if 400 <= status < 500:
                raise SendError(f"refused without an error body (HTTP {status})", status)
            # A 200 we cannot read, or a 5xx that is not MSG91's: it may have been sent.
            raise OutcomeUnknown(f"unreadable response (HTTP {status})", status)
        if status >= 400 or data.get("hasError") or data.get("status") == "fail":
            # MSG91's error body: it answered, and did not take the message.
            reason = str(data.get("errors") or data.get("message") or f"HTTP {status}")
            raise SendError(
                reason, status, retryable=status >= 500 or status == 429, retry_after=retry_after
            )
        inner = data.get("data")
        request_id = data.get("request_id") or (
            inner.get("request_id") if isinstance(inner, dict) else None
        )
        if not request_id:
            raise OutcomeUnknown("response has no request id", status)
        return f"msg91:{request_id}"
