"""Fake of OpenRouter's chat completions endpoint.

Mirrors ``POST /api/v1/chat/completions`` from openrouter.ai/docs: an
OpenAI-compatible request (``model``, ``messages``, ``max_tokens``,
``temperature``) and response (``id: "gen-..."``, ``object: "chat.completion"``,
``choices[].message``, ``usage`` including OpenRouter's ``cost``), the bearer
API key, and the documented error shape
``{"error": {"code": int, "message": str, "metadata"?: {...}}}`` whose ``code``
equals the HTTP status. The injectable faults are the ones OpenRouter's
"Errors" page lists (402, 429 with ``Retry-After``, 502, 503) plus what a
client meets in the wild: hangs, truncated JSON, empty ``choices``, ``null``
content, an HTML page from an intermediary, and HTTP 200 with an error body
(documented for errors raised after the model started generating).

Run standalone: ``python -m fakes.openrouter --port 9002 [--api-key K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from aiohttp import web

from fakes._support import (
    Hangs,
    Pulse,
    action_list,
    bearer_token,
    check_count,
    check_delay,
    read_json_object,
    urlsafe_random,
)

FaultKind = Literal[
    "429",
    "500",
    "502",
    "503",
    "402",
    "timeout",
    "malformed_json",
    "empty_choices",
    "null_content",
    "html",
    "error_in_body",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

Responder = Callable[[dict[str, Any]], str]

# Crude but deterministic pricing so tests can assert a cost was stored.
PROMPT_COST_PER_TOKEN = 0.000001
COMPLETION_COST_PER_TOKEN = 0.000002

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})

_HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center>"
    "</body></html>\n"
)

# Status and body of each plain error kind, worded after OpenRouter's docs.
_ERRORS: dict[str, tuple[int, str, dict[str, Any] | None]] = {
    "402": (402, "Insufficient credits. Add more using https://openrouter.ai/credits", None),
    "429": (429, "Rate limit exceeded: limit_rpm/fake/requests", None),
    "500": (500, "Internal Server Error", None),
    "502": (
        502,
        "Provider returned error",
        {"provider_name": "fake", "raw": "upstream connect error or disconnect/reset"},
    ),
    "503": (503, "No available model provider that meets your routing requirements", None),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One well-formed completion request, including ones answered with a fault."""

    model: str
    body: dict[str, Any]
    authorization: str | None
    http_referer: str | None
    x_title: str | None
    received_at: float
    fault: str | None


def openrouter_error(
    code: int, message: str, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenRouter's documented ``ErrorResponse`` body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}


def content_text(content: object) -> str:
    """Text of a message ``content``: a string or OpenAI-style content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return " ".join(text for text in texts if isinstance(text, str))
    return ""


def echo_responder(body: dict[str, Any]) -> str:
    """Default reply: ``"Echo: <last user message>"`` - deterministic for tests."""
    for message in reversed(body["messages"]):
        if message.get("role") == "user":
            return f"Echo: {content_text(message.get('content'))}"
    return "Echo: "


def count_tokens(text: str) -> int:
    # Whitespace words stand in for tokens: deterministic and easy to predict
    # in assertions; no real tokenizer is needed to test that usage is stored.
    return len(text.split())


def _request_problem(body: dict[str, Any] | None) -> str | None:
    if body is None:
        return "Invalid JSON body"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "'model' is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' is required and must be a non-empty array"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return f"messages[{index}]: invalid or missing 'role'"
        if not isinstance(message.get("content"), str | list | None):
            return f"messages[{index}]: 'content' must be a string or an array"
    for name in ("max_tokens", "temperature"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"'{name}' must be a number"
    return None


@dataclass(frozen=True)
class _Fault:
    kind: str
    retry_after: float | None
    status: int | None


class OpenRouterFake:
    """In-memory OpenRouter: records requests, answers deterministically, injects faults."""

    def __init__(self, api_key: str | None = None, *, provider: str = "fake") -> None:
        self.api_key = api_key
        self.provider = provider
        self.responder: Responder = echo_responder
        self.requests: list[RecordedRequest] = []
        # Keyed by model; None holds the faults/latency that apply to any model.
        self._faults: dict[str | None, deque[_Fault]] = {}
        self._latency: dict[str | None, float] = {}
        self._pulse = Pulse()
        self._hangs = Hangs()
        self.app = self._build_app()

    # -- fault injection -----------------------------------------------------

    def fail_next(
        self,
        count: int,
        kind: FaultKind | str,
        *,
        model: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        """Answer the next ``count`` requests (for ``model``, or any) with ``kind``.

        A model's own queue is consumed before the global one. ``retry_after``
        adds a ``Retry-After`` header (OpenRouter sends it on 429 and 503).
        ``status`` overrides the HTTP status of ``html`` (default 502), e.g. 200
        for a captive proxy.
        """
        check_count(count)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        queue = self._faults.setdefault(model, deque())
        queue.extend(_Fault(kind, retry_after, status) for _ in range(count))

    def set_latency(self, seconds: float, model: str | None = None) -> None:
        """Delay responses for ``model`` (or every model without its own latency)."""
        check_delay(seconds)
        self._latency[model] = seconds

    def reset(self) -> None:
        """Forget requests, faults and latency; release hung requests.

        ``responder`` is configuration, not state, so it survives a reset.
        """
        self.requests.clear()
        self._faults.clear()
        self._latency.clear()
        self._hangs.release_all()

    def pending_faults(self, model: str | None = None) -> int:
        return len(self._faults.get(model, ()))

    # -- inspection ----------------------------------------------------------

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.model == model]

    async def wait_for(self, count: int, timeout: float) -> list[RecordedRequest]:  # noqa: ASYNC109
        """Wait until at least ``count`` requests are recorded; return them all."""
        try:
            await self._pulse.wait_until(lambda: len(self.requests) >= count, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"expected {count} OpenRouter requests within {timeout}s, got {len(self.requests)}"
            ) from None
        return list(self.requests)

    # -- HTTP ----------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/chat/completions", self._completions)
        app.router.add_get("/_fake/requests", self._control_requests)
        app.router.add_post("/_fake/reset", self._control_reset)
        app.router.add_post("/_fake/faults", self._control_faults)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._hangs.release_all()

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        offered = bearer_token(request) or ""
        return hmac.compare_digest(offered.encode(), self.api_key.encode())

    def _next_fault(self, model: str) -> _Fault | None:
        for key in (model, None):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return None

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response(openrouter_error(401, "No auth credentials found"), status=401)
        body = await read_json_object(request)
        problem = _request_problem(body)
        if problem is not None or body is None:
            return web.json_response(openrouter_error(400, problem or ""), status=400)
        model: str = body["model"]
        fault = self._next_fault(model)
        self.requests.append(
            RecordedRequest(
                model=model,
                body=body,
                authorization=request.headers.get("Authorization"),
                http_referer=request.headers.get("HTTP-Referer"),
                x_title=request.headers.get("X-Title"),
                received_at=time.time(),
                fault=fault.kind if fault else None,
            )
        )
        self._pulse.fire()
        latency = self._latency.get(model, self._latency.get(None, 0.0))
        if latency:
            await asyncio.sleep(latency)
        if fault is not None:
            return await self._inject(fault, body)
        return web.json_response(self._completion(body, self.responder(body)))

    def _completion(self, body: dict[str, Any], reply: str | None) -> dict[str, Any]:
        prompt = sum(count_tokens(content_text(m.get("content"))) for m in body["messages"])
        completion = count_tokens(reply or "")
        cost = prompt * PROMPT_COST_PER_TOKEN + completion * COMPLETION_COST_PER_TOKEN
        return {
            "id": f"gen-{int(time.time())}-{urlsafe_random(15)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "provider": self.provider,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "native_finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": reply, "refusal": None},
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "cost": round(cost, 9),
            },
        }

    async def _inject(self, fault: _Fault, body: dict[str, Any]) -> web.Response:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        kind = fault.kind
        if kind in _ERRORS:
            status, message, metadata = _ERRORS[kind]
            if kind == "429":
                metadata = _rate_limit_metadata(fault.retry_after)
            error = openrouter_error(status, message, metadata)
            return web.json_response(error, status=status, headers=headers)
        if kind == "timeout":
            await self._hangs.hang()
            # Only reached on reset/shutdown: OpenRouter's own "timed out" code.
            error = openrouter_error(408, "Request timed out")
            return web.json_response(error, status=408, headers=headers)
        if kind == "html":
            return web.Response(
                text=_HTML_PAGE,
                status=fault.status or 502,
                content_type="text/html",
                headers=headers,
            )
        if kind == "error_in_body":
            # Documented: errors after generation started arrive with HTTP 200.
            error = openrouter_error(502, "Provider returned error", {"provider_name": "fake"})
            return web.json_response(error, headers=headers)
        reply = self.responder(body)
        completion = self._completion(body, None if kind == "null_content" else reply)
        if kind == "empty_choices":
            completion["choices"] = []
        if kind == "malformed_json":
            encoded = json.dumps(completion).encode()
            truncated = encoded[: len(encoded) // 2]
            return web.Response(body=truncated, content_type="application/json", headers=headers)
        return web.json_response(completion, headers=headers)

    # -- control endpoints (sandbox inspection; not part of OpenRouter's API) --

    async def _control_requests(self, request: web.Request) -> web.Response:
        model = request.query.get("model")
        records = self.requests if model is None else self.requests_for(model)
        return web.json_response([asdict(record) for record in records])

    async def _control_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_faults(self, request: web.Request) -> web.Response:
        """Body: one action object or a list, e.g. ``{"action": "fail_next", "count": 2,
        "kind": "429", "model": "x/y", "retry_after": 1}`` or ``{"action":
        "set_latency", "seconds": 0.5, "model": null}``."""
        try:
            for args in action_list(await request.json()):
                action = args.action()
                if action == "fail_next":
                    self.fail_next(
                        args.integer("count", 1),
                        args.string("kind"),
                        model=args.opt_string("model"),
                        retry_after=args.opt_number("retry_after"),
                        status=args.opt_integer("status"),
                    )
                elif action == "set_latency":
                    self.set_latency(args.number("seconds"), model=args.opt_string("model"))
                else:
                    raise ValueError(f"unknown action {action!r}")
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        pending = {str(key): len(queue) for key, queue in self._faults.items() if queue}
        return web.json_response({"pending_faults": pending})


def _rate_limit_metadata(retry_after: float | None) -> dict[str, Any]:
    # OpenRouter puts the limiter's headers in metadata; reset is epoch millis.
    reset_ms = int((time.time() + (retry_after or 60.0)) * 1000)
    return {
        "headers": {
            "X-RateLimit-Limit": "20",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_ms),
        },
        "provider_name": None,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenRouter chat completions API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    parser.add_argument("--api-key", help="required bearer API key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    fake = OpenRouterFake(args.api_key)
    web.run_app(fake.app, host=args.host, port=args.port, handler_cancellation=True)


if __name__ == "__main__":
    main()
