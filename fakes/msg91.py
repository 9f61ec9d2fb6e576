"""Fake of MSG91's WhatsApp API (DESIGN.md §7, from public integrations).

- Session (free-form) text: ``POST /api/v5/whatsapp/whatsapp-outbound-message/`` with
  ``integrated_number``, ``content_type=text``, ``recipient_number`` and ``text``, as query
  parameters or a JSON body.
- Templates: ``POST /api/v5/whatsapp/whatsapp-outbound-message/bulk/`` with
  ``{"integrated_number", "content_type": "template", "payload": {..., "template": {"name",
  "language", "to_and_components": [{"to": [...], "components": {...}}]}}}``.
- Authentication: the ``authkey`` header. Past ``rate_per_minute`` requests a minute it answers
  429, as the seed's limit of 100 requests/minute.
- Delivery reports: set ``report_url`` and ``early_reports`` to post them to our webhook
  before the send is answered, the race a real MSG91 account can show.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

SESSION_PATH = "/api/v5/whatsapp/whatsapp-outbound-message/"
BULK_PATH = "/api/v5/whatsapp/whatsapp-outbound-message/bulk/"


@dataclass(slots=True)
class Msg91Sent:
    integrated_number: str
    to: str
    content_type: str
    text: str | None
    body: dict[str, Any]
    request_id: str
    received_at: float = field(default_factory=time.time)


def _failure(status: int, message: str) -> web.Response:
    return web.json_response(
        {"status": "fail", "hasError": True, "errors": message, "data": None}, status=status
    )


class Msg91Fake:
    def __init__(self, auth_key: str | None = None, *, rate_per_minute: int = 100) -> None:
        self.auth_key = auth_key
        self.rate_per_minute = rate_per_minute
        self.sent: list[Msg91Sent] = []
        self.attempts = 0
        self._failures: deque[tuple[int, str]] = deque()
        self._recent: deque[float] = deque()
        # Delivery reports posted to `report_url` (our MSG91 webhook) before the send is
        # answered: MSG91's report can overtake its own answer.
        self.report_url: str | None = None
        self.report_secret = ""
        self.early_reports: tuple[str, ...] = ()
        self.app = web.Application()
        self.app.router.add_post(SESSION_PATH, self._session)
        self.app.router.add_post(BULK_PATH, self._bulk)
        self.app.router.add_get("/_fake/messages", self._list)

    def fail_next(self, count: int, *, status: int = 500, message: str = "Internal error") -> None:
        self._failures.extend([(status, message)] * count)

    def reset(self) -> None:
        self.sent.clear()
        self._failures.clear()
        self._recent.clear()
        self.attempts = 0

    def messages_to(self, to: str) -> list[Msg91Sent]:
        return [m for m in self.sent if m.to == to]

    def _refuse(self, request: web.Request) -> web.Response | None:
        if self.auth_key is not None and request.headers.get("authkey") != self.auth_key:
            return _failure(401, "Authentication failure")
        self.attempts += 1
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 60:
            self._recent.popleft()
        if self.rate_per_minute and len(self._recent) >= self.rate_per_minute:
            return _failure(429, "Too many requests")
        self._recent.append(now)
        if self._failures:
            status, message = self._failures.popleft()
            return _failure(status, message)
        return None

    async def _report_early(self, request_id: str, to: str) -> None:
        if self.report_url is None:
            return
        async with aiohttp.ClientSession() as session:
            for status in self.early_reports:
                report = {"requestId": request_id, "status": status, "customerNumber": to,
                          "direction": "outbound"}  # fmt: skip
                headers = {"X-Msg91-Secret": self.report_secret}
                async with session.post(self.report_url, json=report, headers=headers) as answer:
                    answer.raise_for_status()

    async def _accept(self, integrated: str, to: str, kind: str, text: str | None,
                      body: dict[str, Any]) -> web.Response:  # fmt: skip
        request_id = uuid.uuid4().hex
        self.sent.append(Msg91Sent(integrated, to, kind, text, body, request_id))
        await self._report_early(request_id, to)
        return web.json_response(
            {
                "status": "success",
                "hasError": False,
                "data": "Message sent",
                "request_id": request_id,
            }
        )

    async def _session(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        body: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            try:
                body.update(await request.json())
            except ValueError:
                return _failure(400, "Invalid JSON")
        missing = [
            k for k in ("integrated_number", "recipient_number", "content_type") if not body.get(k)
        ]
        if missing or (body.get("content_type") == "text" and not body.get("text")):
            return _failure(400, f"missing {', '.join(missing) or 'text'}")
        return await self._accept(
            str(body["integrated_number"]), str(body["recipient_number"]),
            str(body["content_type"]), body.get("text"), body,
        )  # fmt: skip

    async def _bulk(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        try:
            body = await request.json()
            template = body["payload"]["template"]
            to = template["to_and_components"][0]["to"][0]
            name = template["name"]
        except (ValueError, KeyError, IndexError, TypeError):
            return _failure(400, "invalid template payload")
        return await self._accept(
            str(body.get("integrated_number")), str(to), "template", name, body
        )

    async def _list(self, _request: web.Request) -> web.Response:
        return web.json_response(
            [{"to": m.to, "content_type": m.content_type, "text": m.text} for m in self.sent]
        )
