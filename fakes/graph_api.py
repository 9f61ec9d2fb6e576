"""Fake of the Meta WhatsApp Cloud API send endpoint (Graph API).

Mirrors, from Meta's Cloud API reference:

* ``POST /{version}/{phone_number_id}/messages`` ("Send messages"): the request
  body (``messaging_product``, ``recipient_type``, ``to``, ``type`` and the object
  named by ``type``, ``context``, ``biz_opaque_callback_data``) and the success
  body ``{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id"}]}``.
* "Mark messages as read": the same endpoint with ``status: "read"`` answers
  ``{"success": true}``.
* "Error codes": the Graph error envelope ``{"error": {"message": "(#<code>) <title>",
  "type", "code", "error_data": {"messaging_product", "details"}, "error_subcode"?,
  "fbtrace_id"}}``; an invalid token is code 190 (HTTP 401).
* Status webhooks after a send (see :mod:`fakes.graph_webhooks`).

Deliberately stricter than Meta: ``type`` is required (Meta defaults it to
``text``) so a client that forgets it is caught in tests.

Run standalone: ``python -m fakes.graph_api --port 9001 [--token T]
[--status-webhook-url U --app-secret S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from fakes._support import (
    Hangs,
    Pulse,
    action_list,
    bearer_token,
    check_count,
    check_delay,
    random_token,
    read_json_object,
    urlsafe_random,
)
from fakes.graph_webhooks import WebhookSender, status_error, status_payload

MESSAGE_TYPES = frozenset(
    {
        "text",
        "template",
        "interactive",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "reaction",
    }
)
MAX_TEXT_BODY = 4096
MAX_CALLBACK_DATA = 512

# A body cut off mid-object: valid UTF-8, declared as JSON, unparseable. This is
# what a proxy dropping the connection mid-response looks like to a client.
_TRUNCATED_SUCCESS = b'{"messaging_product":"whatsapp","contacts":[{"input":"'


@dataclass(frozen=True)
class SentMessage:
    """One send the fake accepted (HTTP 200 with a wamid)."""

    phone_number_id: str
    to: str
    type: str
    text: str | None
    body: dict[str, Any]
    wamid: str
    biz_opaque_callback_data: str | None
    reply_to: str | None
    received_at: float
    received_monotonic: float


@dataclass(frozen=True)
class ReadReceipt:
    """One accepted "mark as read" (optionally with a typing indicator)."""

    phone_number_id: str
    message_id: str
    typing_indicator: dict[str, Any] | None
    received_at: float


@dataclass(frozen=True)
class _ErrorFault:
    status: int
    code: int
    title: str
    message: str | None
    retry_after: float | None
    subcode: int | None


@dataclass(frozen=True)
class _HangFault:
    pass


@dataclass(frozen=True)
class _MalformedFault:
    pass


@dataclass(frozen=True)
class _AcceptLateFault:
    seconds: float


@dataclass(frozen=True)
class _PassFault:
    """A send answered normally: lets a fault target the Nth send from now."""


_Fault = _ErrorFault | _HangFault | _MalformedFault | _AcceptLateFault | _PassFault


def meta_error(
    code: int, message: str, *, details: str | None = None, subcode: int | None = None
) -> dict[str, Any]:
    """Meta's Graph API error envelope."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "A" + random_token(22)
    return {"error": error}


def new_wamid() -> str:
    # Real wamids are "wamid." + base64 of an opaque blob; callers must treat
    # them as opaque strings, so only the prefix and uniqueness matter.
    return "wamid.HBgL" + urlsafe_random(36)


def _invalid(details: str) -> web.Response:
    body = meta_error(100, "(#100) Invalid parameter", details=details)
    return web.json_response(body, status=400)


def _format_retry_after(seconds: float) -> str:
    return f"{seconds:g}"


def _send_problem(body: dict[str, Any] | None) -> str | None:
    """Why Meta would reject this send with code 100, or ``None`` if valid."""
    if body is None:
        return "Request body must be a JSON object"
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required and must be 'whatsapp'."
    if body.get("recipient_type", "individual") not in ("individual", "group"):
        return "Param recipient_type must be one of {individual, group}."
    # `to` takes a phone number, `recipient` a business-scoped user id; `to` wins.
    to = body.get("to") or body.get("recipient")
    if not isinstance(to, str) or not to.strip():
        return "The parameter to is required."
    kind = body.get("type")
    if not isinstance(kind, str):
        return "The parameter type is required."
    if kind not in MESSAGE_TYPES:
        return f"Param type must be one of {{{', '.join(sorted(MESSAGE_TYPES))}}}."
    if body.get(kind) is None:
        return f"The parameter {kind} is required."
    if kind == "text":
        problem = _text_problem(body["text"])
        if problem is not None:
            return problem
    callback = body.get("biz_opaque_callback_data")
    if callback is not None and not isinstance(callback, str):
        return "Param biz_opaque_callback_data must be a string."
    if isinstance(callback, str) and len(callback) > MAX_CALLBACK_DATA:
        return f"Param biz_opaque_callback_data must be at most {MAX_CALLBACK_DATA} characters."
    context = body.get("context")
    if context is not None and not (
        isinstance(context, dict) and isinstance(context.get("message_id"), str)
    ):
        return "Param context['message_id'] is required."
    return None


def _text_problem(text: object) -> str | None:
    if not isinstance(text, dict):
        return "Param text must be an object."
    text_body = text.get("body")
    if not isinstance(text_body, str) or not text_body:
        return "The parameter text['body'] is required."
    if len(text_body) > MAX_TEXT_BODY:
        return f"Param text['body'] must be at most {MAX_TEXT_BODY} characters long."
    preview = text.get("preview_url", False)
    if not isinstance(preview, bool):
        return "Param text['preview_url'] must be a boolean."
    return None


class GraphApiFake:
    """In-memory WhatsApp Cloud API: records sends, injects faults, emits statuses."""

    def __init__(
        self,
        access_token: str | None = None,
        *,
        status_webhook_url: str | None = None,
        app_secret: str | None = None,
        display_phone_number: str = "15550000000",
        waba_id: str = "100000000000000",
        auto_statuses: Sequence[str] = ("sent",),
    ) -> None:
        self.access_token = access_token
        self.display_phone_number = display_phone_number
        self.waba_id = waba_id
        # Statuses posted after every accepted send, in order ("sent" is what
        # Meta always sends; add "delivered"/"read" to simulate a live handset).
        self.auto_statuses: tuple[str, ...] = tuple(auto_statuses)
        self.sent: list[SentMessage] = []
        self.read_receipts: list[ReadReceipt] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        # Every well-formed send attempt, including ones answered with a fault:
        # lets retry tests count attempts without a recorded success.
        self.attempts = 0
        self.webhooks = WebhookSender(status_webhook_url, app_secret)
        self._by_wamid: dict[str, SentMessage] = {}
        self._faults: deque[_Fault] = deque()
        self._latency = 0.0
        self._pulse = Pulse()
        self._hangs = Hangs()
        self.app = self._build_app()

    # -- configuration -------------------------------------------------------

    @property
    def status_webhook_url(self) -> str | None:
        return self.webhooks.url

    @status_webhook_url.setter
    def status_webhook_url(self, url: str | None) -> None:
        # Settable after construction because the receiver's port is often
        # only known once it is running.
        self.webhooks.url = url

    # -- fault injection -----------------------------------------------------

    def fail_next(
        self,
        count: int,
        *,
        status: int = 400,
        code: int,
        title: str,
        message: str | None = None,
        retry_after: float | None = None,
        subcode: int | None = None,
    ) -> None:
        """Answer the next ``count`` sends with Meta's error envelope.

        ``message`` defaults to Meta's ``"(#<code>) <title>"``; ``title`` goes to
        ``error_data.details``. Meta answers most Cloud API errors (including
        130429 "Rate limit hit") with HTTP 400, hence the default ``status``.
        """
        check_count(count)
        fault = _ErrorFault(status, code, title, message, retry_after, subcode)
        self._faults.extend(fault for _ in range(count))

    def fail_next_malformed(self, count: int = 1) -> None:
        """Answer the next ``count`` sends with HTTP 200 and a truncated JSON body.

        Nothing is recorded: the caller cannot know whether the message went out.
        """
        check_count(count)
        self._faults.extend(_MalformedFault() for _ in range(count))

    def hang_next(self, count: int = 1) -> None:
        """Never answer the next ``count`` sends (until the client gives up)."""
        check_count(count)
        self._faults.extend(_HangFault() for _ in range(count))

    def accept_late_next(self, count: int, seconds: float) -> None:
        """Accept the next ``count`` sends, then answer each only after ``seconds``.

        Each send is recorded and its status webhooks (with our callback data) are posted
        at once, as Meta does; only the HTTP answer is late. A client that gives up first
        cannot know the message went out: the unknown outcome of DESIGN.md §3.
        """
        check_count(count)
        check_delay(seconds)
        self._faults.extend(_AcceptLateFault(seconds) for _ in range(count))

    def pass_next(self, count: int) -> None:
        """Answer the next ``count`` sends normally, so the faults queued after them hit
        later sends (say, the third part of a split reply)."""
        check_count(count)
        self._faults.extend(_PassFault() for _ in range(count))

    def set_latency(self, seconds: float) -> None:
        """Delay every API response (sends and reads) by ``seconds``."""
        check_delay(seconds)
        self._latency = seconds

    def clear_faults(self) -> None:
        """Drop the faults still queued, keeping the record of sends (an outage ends)."""
        self._faults.clear()

    def reset(self) -> None:
        """Forget records and faults; release any hung request."""
        self.sent.clear()
        self.read_receipts.clear()
        self._by_wamid.clear()
        self.attempts = 0
        self._faults.clear()
        self._latency = 0.0
        self._hangs.release_all()

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    # -- inspection ----------------------------------------------------------

    def messages_to(self, to: str) -> list[SentMessage]:
        return [message for message in self.sent if message.to == to]

    def message(self, wamid: str) -> SentMessage:
        return self._by_wamid[wamid]

    async def wait_for(self, count: int, timeout: float) -> list[SentMessage]:  # noqa: ASYNC109
        """Wait until at least ``count`` sends are recorded; return them all."""
        try:
            await self._pulse.wait_until(lambda: len(self.sent) >= count, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"expected {count} WhatsApp sends within {timeout}s, got {len(self.sent)}: "
                f"{[(m.to, m.text) for m in self.sent]}"
            ) from None
        return list(self.sent)

    # -- status webhooks -----------------------------------------------------

    async def emit_status(
        self, wamid: str, status: str, errors: Sequence[dict[str, Any]] | None = None
    ) -> int:
        """POST a status webhook for a recorded send now; return the receiver's status.

        For ``status="failed"`` without ``errors`` a generic Meta 131000 error is
        attached, since Meta never sends a failure without one.
        """
        if self.webhooks.url is None:
            raise RuntimeError("GraphApiFake has no status_webhook_url")
        message = self._by_wamid[wamid]
        if status == "failed" and not errors:
            errors = [status_error(131000, "Something went wrong")]
        return await self.webhooks.post(self._status(message, status, errors))

    async def drain_webhooks(self) -> None:
        """Wait until the automatic status webhooks queued so far are delivered."""
        await self.webhooks.drain()

    def _status(
        self, message: SentMessage, status: str, errors: Sequence[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        return status_payload(
            waba_id=self.waba_id,
            display_phone_number=self.display_phone_number,
            phone_number_id=message.phone_number_id,
            wamid=message.wamid,
            status=status,
            recipient_id=_wa_id(message.to),
            biz_opaque_callback_data=message.biz_opaque_callback_data,
            errors=errors,
        )

    # -- HTTP ----------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(r"/{version:v\d+\.\d+}/{phone_number_id}/messages", self._messages)
        # Media: "Retrieve media URL" then a download of that URL with the same bearer token
        # (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media).
        app.router.add_get(r"/{version:v\d+\.\d+}/{media_id}", self._media_url)
        app.router.add_get("/_fake/media/{media_id}", self._media_download)
        app.router.add_get("/_fake/messages", self._control_messages)
        app.router.add_get("/_fake/read_receipts", self._control_read_receipts)
        app.router.add_post("/_fake/reset", self._control_reset)
        app.router.add_post("/_fake/faults", self._control_faults)
        app.router.add_post("/_fake/statuses", self._control_statuses)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._hangs.release_all()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.webhooks.close()

    def add_media(self, media_id: str, content: bytes, mime_type: str = "image/jpeg") -> None:
        """Make a customer's media retrievable, as Meta holds it for 30 days."""
        self.media[media_id] = (content, mime_type)

    async def _media_url(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response(meta_error(190, "Invalid OAuth access token."), status=401)
        media_id = request.match_info["media_id"]
        if media_id not in self.media:
            return web.json_response(meta_error(100, "Unknown media id"), status=400)
        content, mime = self.media[media_id]
        # Mounted under a prefix (sandbox mode) the download URL keeps that prefix.
        version = "/" + request.match_info["version"] + "/"
        prefix = request.path[: request.path.index(version)]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{request.url.origin()}{prefix}/_fake/media/{media_id}",
                "mime_type": mime,
                "sha256": hashlib.sha256(content).hexdigest(),
                "file_size": len(content),
                "id": media_id,
            }
        )

    async def _media_download(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        found = self.media.get(request.match_info["media_id"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    def _authorized(self, request: web.Request) -> bool:
        if self.access_token is None:
            return True
        # Graph also accepts ?access_token=, so a client using it is not wrong.
        offered = bearer_token(request) or request.query.get("access_token", "")
        return hmac.compare_digest(offered.encode(), self.access_token.encode())

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if self._latency:
            await asyncio.sleep(self._latency)
        if not self._authorized(request):
            body = meta_error(190, "Invalid OAuth access token.")
            return web.json_response(body, status=401)
        payload = await read_json_object(request)
        phone_number_id = request.match_info["phone_number_id"]
        if payload is not None and payload.get("status") == "read":
            # Faults target sends only: tests queue a failure for "the reply",
            # and the read receipt sent first must not swallow it.
            return self._mark_read(phone_number_id, payload)
        problem = _send_problem(payload)
        if problem is not None or payload is None:
            return _invalid(problem or "")
        self.attempts += 1
        fault = self._faults.popleft() if self._faults else _PassFault()
        if isinstance(fault, _PassFault):
            return self._accept(phone_number_id, payload)
        if isinstance(fault, _AcceptLateFault):
            accepted = self._accept(phone_number_id, payload)
            await asyncio.sleep(fault.seconds)
            return accepted
        return await self._inject(fault)

    def _mark_read(self, phone_number_id: str, payload: dict[str, Any]) -> web.Response:
        if payload.get("messaging_product") != "whatsapp":
            return _invalid("The parameter messaging_product is required and must be 'whatsapp'.")
        message_id = payload.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            return _invalid("The parameter message_id is required.")
        typing = payload.get("typing_indicator")
        receipt = ReadReceipt(
            phone_number_id=phone_number_id,
            message_id=message_id,
            typing_indicator=typing if isinstance(typing, dict) else None,
            received_at=time.time(),
        )
        self.read_receipts.append(receipt)
        return web.json_response({"success": True})

    def _accept(self, phone_number_id: str, payload: dict[str, Any]) -> web.Response:
        kind: str = payload["type"]
        to: str = payload.get("to") or payload["recipient"]
        text = payload["text"]["body"] if kind == "text" else None
        context = payload.get("context")
        message = SentMessage(
            phone_number_id=phone_number_id,
            to=to,
            type=kind,
            text=text,
            body=payload,
            wamid=new_wamid(),
            biz_opaque_callback_data=payload.get("biz_opaque_callback_data"),
            reply_to=context["message_id"] if isinstance(context, dict) else None,
            received_at=time.time(),
            received_monotonic=time.monotonic(),
        )
        self.sent.append(message)
        self._by_wamid[message.wamid] = message
        self._pulse.fire()
        if self.webhooks.url is not None and self.auto_statuses:
            self.webhooks.post_in_background([self._status(message, s) for s in self.auto_statuses])
        sent_id: dict[str, Any] = {"id": message.wamid}
        if kind == "template":
            # Meta reports template pacing state on template sends only.
            sent_id["message_status"] = "accepted"
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [
                    {"input": to, "user_id": to}
                    if "to" not in payload
                    else {"input": to, "wa_id": _wa_id(to)}
                ],
                "messages": [sent_id],
            }
        )

    async def _inject(self, fault: _ErrorFault | _HangFault | _MalformedFault) -> web.Response:
        if isinstance(fault, _MalformedFault):
            return web.Response(body=_TRUNCATED_SUCCESS, content_type="application/json")
        if isinstance(fault, _HangFault):
            await self._hangs.hang()
            # Only reached on reset/shutdown (or after an hour): answer with
            # Meta's transient "service unavailable" so nothing looks sent.
            body = meta_error(2, "(#2) Service temporarily unavailable", details="released")
            return web.json_response(body, status=503)
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = _format_retry_after(fault.retry_after)
        body = meta_error(
            fault.code,
            fault.message or f"(#{fault.code}) {fault.title}",
            details=fault.title,
            subcode=fault.subcode,
        )
        return web.json_response(body, status=fault.status, headers=headers)

    # -- control endpoints (sandbox inspection; not part of Meta's API) -------

    async def _control_messages(self, request: web.Request) -> web.Response:
        to = request.query.get("to")
        messages = self.sent if to is None else self.messages_to(to)
        return web.json_response([asdict(message) for message in messages])

    async def _control_read_receipts(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(receipt) for receipt in self.read_receipts])

    async def _control_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_faults(self, request: web.Request) -> web.Response:
        """Body: one action object or a list, e.g. ``{"action": "fail_next",
        "count": 1, "status": 400, "code": 130429, "title": "Rate limit hit"}``.
        Actions mirror the Python methods: fail_next, fail_next_malformed,
        hang_next, accept_late_next (``count``, ``seconds``), pass_next (``count``),
        set_latency (``seconds``)."""
        try:
            actions = action_list(await request.json())
            for args in actions:
                action = args.action()
                if action == "fail_next":
                    self.fail_next(
                        args.integer("count", 1),
                        status=args.integer("status", 400),
                        code=args.integer("code"),
                        title=args.string("title"),
                        message=args.opt_string("message"),
                        retry_after=args.opt_number("retry_after"),
                        subcode=args.opt_integer("subcode"),
                    )
                elif action == "fail_next_malformed":
                    self.fail_next_malformed(args.integer("count", 1))
                elif action == "hang_next":
                    self.hang_next(args.integer("count", 1))
                elif action == "accept_late_next":
                    self.accept_late_next(args.integer("count", 1), args.number("seconds"))
                elif action == "pass_next":
                    self.pass_next(args.integer("count", 1))
                elif action == "set_latency":
                    self.set_latency(args.number("seconds"))
                else:
                    raise ValueError(f"unknown action {action!r}")
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"pending_faults": self.pending_faults, "latency": self._latency})

    async def _control_statuses(self, request: web.Request) -> web.Response:
        """Body: ``{"wamid": ..., "status": "delivered"|"read"|"failed", "errors"?: [...]}``."""
        try:
            payload = await request.json()
            wamid, status = payload["wamid"], payload["status"]
            errors = payload.get("errors")
            code = await self.emit_status(wamid, status, errors)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            return web.json_response({"error": repr(exc)}, status=400)
        return web.json_response({"webhook_status": code})


def _wa_id(to: str) -> str:
    # Meta answers with the normalised WhatsApp id: digits only, no "+".
    return "".join(ch for ch in to if ch.isdigit())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Meta WhatsApp Cloud API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--token", help="required bearer access token")
    parser.add_argument("--status-webhook-url", help="where to POST status webhooks")
    parser.add_argument("--app-secret", help="signs status webhooks (X-Hub-Signature-256)")
    parser.add_argument("--display-phone-number", default="15550000000")
    parser.add_argument(
        "--auto-status",
        action="append",
        dest="auto_statuses",
        help="status webhook posted after each send, repeatable (default: sent)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    fake = GraphApiFake(
        args.token,
        status_webhook_url=args.status_webhook_url,
        app_secret=args.app_secret,
        display_phone_number=args.display_phone_number,
        auto_statuses=args.auto_statuses or ("sent",),
    )
    web.run_app(fake.app, host=args.host, port=args.port, handler_cancellation=True)


if __name__ == "__main__":
    main()
