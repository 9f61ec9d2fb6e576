"""Meta's WhatsApp Cloud API as a delivery provider.

The send: POST {graph}/{version}/{phone-number-id}/messages with a bearer token
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages).
The sandbox provider is this client pointed at the local Graph API fake.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from yarl import URL

from actors.delivery.providers.errors import (
    OutcomeUnknown,
    SendError,
    TransientError,
    error_for,
    retry_after_of,
    transport_error,
    with_retries,
)
from actors.delivery.providers.protocol import MediaFile, OutboundMessage
from actors.http import DEFAULT_POOL, HttpClient, HttpPool
from actors.wire import Content, split_text
from config.vocabulary import ProviderName

# Where Meta serves customers' media ("Retrieve media URL" answers a URL on this host;
# https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media).
MEDIA_HOSTS = frozenset({"lookaside.fbsbx.com"})
# Bodies encoded with orjson: aiohttp's json= runs the standard library's encoder.
JSON_HEADERS = {"Content-Type": "application/json"}


class CloudApiProvider:
    name: ProviderName = ProviderName.WHATSAPP_CLOUD

    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        access_token: str,
        timeout: float = 15.0,
        max_attempts: int = 4,
        deadline: float = 60.0,
        pool: HttpPool = DEFAULT_POOL,
    ) -> None:
        self._version = api_version
        self._graph_origin = URL(base_url).origin()
        self._max_attempts = max_attempts
        self._deadline = deadline
        # A file may take longer than one send: its download is bounded per read instead.
        self._download_timeout = aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout)
        # One client for sends, read receipts and media downloads (absolute URLs).
        self._http = HttpClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout,
            pool=pool,
        )

    async def close(self) -> None:
        await self._http.close()

    async def send(self, message: OutboundMessage) -> str:
        """Send the reply; a text over 4096 characters goes as several messages, in order.

        Returns the provider id of the first part. The delivery actor hands over one part
        at a time (the send ledger), so each part has its own claim and callback data.
        """
        content = message.content
        if content.kind == "text":
            bodies = [
                cloud_api_body(Content.plain(part), message.to) for part in split_text(content.text)
            ]
        else:
            bodies = [cloud_api_body(content.validate(), message.to)]
        wamids = [await self._send_with_retries(message, body) for body in bodies]
        return wamids[0]

    async def mark_read(self, business_number: str, message_id: str) -> None:
        # https://developers.facebook.com/docs/whatsapp/cloud-api/guides/mark-message-as-read
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        url = self._http.url(f"/{self._version}/{business_number}/messages")
        try:
            async with self._http.session().post(
                url, data=orjson.dumps(body), headers=JSON_HEADERS
            ) as response:
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(f"transport error: {exc!r}") from exc
        if status >= 400:
            raise SendError(f"mark as read: HTTP {status}", status)

    async def fetch_media(self, media_id: str, max_bytes: int) -> MediaFile:
        """Download a customer's media, with no content when it is over `max_bytes`.

        Two steps, as Meta documents: GET /{media-id} for a short-lived URL, then GET that
        URL with the same bearer token.
        """
        session = self._http.session()
        try:
            async with session.get(self._http.url(f"/{self._version}/{media_id}")) as info:
                if info.status >= 400:
                    raise SendError(f"media lookup: HTTP {info.status}", info.status)
                meta = orjson.loads(await info.read())
            mime = str(meta.get("mime_type") or "application/octet-stream")
            size = int(meta.get("file_size") or 0)
            if size > max_bytes:
                return MediaFile(None, mime, size)
            url = str(meta.get("url") or "")
            if not self._may_carry_token(url):
                # The bearer token opens the whole WhatsApp account: it goes to Meta's media
                # host or our own Graph base URL, never to wherever a response points.
                raise SendError(f"media URL on an unexpected host: {URL(url).host}"[:200])
            chunks: list[bytes] = []
            received = 0
            async with session.get(url, timeout=self._download_timeout) as download:
                if download.status >= 400:
                    raise SendError(f"media download: HTTP {download.status}")
                async for chunk in download.content.iter_chunked(64 * 1024):
                    received += len(chunk)
                    if received > max_bytes:  # file_size was missing or wrong
                        return MediaFile(None, mime, received)
                    chunks.append(chunk)
            return MediaFile(b"".join(chunks), mime, received)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(f"media transport error: {exc!r}") from exc

    def _may_carry_token(self, url: str) -> bool:
        try:
            target = URL(url)
            return target.origin() == self._graph_origin or (
                target.scheme == "https" and target.host in MEDIA_HOSTS and target.port == 443
            )
        except ValueError:
            return False

    async def _send_with_retries(self, message: OutboundMessage, body: dict[str, Any]) -> str:
        return await with_retries(
            lambda: self._send_once(message, body),
            max_attempts=self._max_attempts,
            deadline=self._deadline,
        )

    async def _send_once(self, message: OutboundMessage, body: dict[str, Any]) -> str:
        # Meta echoes this in every status webhook of the message: it lets a crash
        # between the send and our write be resolved without sending twice.
        body = {**body, "biz_opaque_callback_data": message.callback_data}
        if message.context_message_id:
            body["context"] = {"message_id": message.context_message_id}
        url = self._http.url(f"/{self._version}/{message.business_number}/messages")
        try:
            async with self._http.session().post(
                url, data=orjson.dumps(body), headers=JSON_HEADERS
            ) as response:
                status = response.status
                retry_after = retry_after_of(response.headers.get("Retry-After"))
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc) from exc
        try:
            data = orjson.loads(raw)
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            # Meta's error body: Meta answered, and did not take the message.
            code = error.get("code")
            title = str(error.get("message") or (error.get("error_data") or {}).get("details", ""))
            raise error_for(
                code if isinstance(code, int) else None, title or f"HTTP {status}", status,
                retry_after,
            )  # fmt: skip
        if 400 <= status < 500:
            raise SendError(f"refused without an error body (HTTP {status})", status)
        try:
            assert isinstance(data, dict) and status < 300
            return str(data["messages"][0]["id"])
        except (AssertionError, KeyError, IndexError, TypeError) as exc:
            # A 200 we cannot read, or a 5xx that is not Meta's: it may have been sent.
            raise OutcomeUnknown(f"unreadable response (HTTP {status})", status) from exc


def is_user_id(identity: str) -> bool:
    """A business-scoped user id (`US.13491208655302741918`, `US.ENT.…`), not a phone.

    Phone numbers (wa_id) are digits only; a BSUID is a country code, a dot, and more.
    """
    return "." in identity


def cloud_api_body(content: Content, to: str) -> dict[str, Any]:
    """The Cloud API /messages body for this content (text parts are sent one by one).

    A customer known only by a business-scoped user id is addressed with `recipient`
    and no `to`: `to` is for phone numbers, and it wins when both are given
    (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/).
    """
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        ("recipient" if is_user_id(to) else "to"): to,
    }
    if content.kind == "text":
        body.update(type="text", text={"body": content.text, "preview_url": False})
    elif content.kind == "buttons":
        body.update(
            type="interactive",
            interactive={
                "type": "button",
                "body": {"text": content.text},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": c.id, "title": c.title}}
                        for c in content.choices
                    ]
                },
            },
        )
    elif content.kind == "list":
        rows = [
            {
                "id": c.id,
                "title": c.title,
                **({"description": c.description} if c.description else {}),
            }
            for c in content.choices
        ]
        body.update(
            type="interactive",
            interactive={
                "type": "list",
                "body": {"text": content.text},
                "action": {
                    "button": content.list_button,
                    "sections": [{"title": "Options", "rows": rows}],
                },
            },
        )
    else:
        components = (
            [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p} for p in content.template_params],
                }
            ]
            if content.template_params
            else []
        )
        body.update(
            type="template",
            template={
                "name": content.template_name,
                "language": {"code": content.template_language},
                "components": components,
            },
        )
    return body
