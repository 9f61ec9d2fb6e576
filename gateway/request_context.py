"""Per-request context: a request id in every log line and response, and JSON errors.

The id comes from X-Request-ID when the caller sent a sane one (a proxy's, say), else a
new one; structlog's contextvars carry it into every log line the request causes.
Unexpected errors answer 500 with the id and nothing else, so no stack trace, query or
secret reaches a client; the log has the details.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.api.routing import error_response

HEADER = "X-Request-ID"
_SANE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(HEADER, "")
    request_id = given if _SANE.match(given) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            exc.headers[HEADER] = request_id
            raise
        # API clients get JSON errors, also for unknown routes and wrong methods.
        response = error_response(exc.status, exc.reason)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        response = error_response(500, f"internal error (request id {request_id})")
    if not response.prepared:
        response.headers[HEADER] = request_id
    return response
