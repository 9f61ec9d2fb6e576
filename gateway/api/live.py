"""GET /api/events: the Server-Sent Events stream the dashboard pages listen to."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from gateway.api.routing import ApiError, Call, Endpoint
from gateway.events import CLOSE
from store import users

HEARTBEAT_SECONDS = 15.0
# How often an open stream checks that its operator has not logged out.
SESSION_CHECK_SECONDS = 5.0


async def stream(call: Call) -> web.StreamResponse:
    events = call.services.events
    if events is None:
        raise ApiError(503, "live events need Redis, which this gateway does not have")
    request = call.request
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # Proxies such as nginx would otherwise buffer the stream.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue = events.subscribe()
    try:
        # Tells the page the stream is live, so it can fetch once and then follow events.
        await response.write(b'event: ready\ndata: {"type":"ready"}\n\n')
        ended = await _follow(call, response, queue)
        if ended is not None:
            # The page reconnects with its renewed token, or is sent to the login.
            await response.write(b"event: " + ended + b'\ndata: {"type":"' + ended + b'"}\n\n')
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        events.unsubscribe(queue)
        with contextlib.suppress(Exception):
            await response.write_eof()
    return response


async def _follow(
    call: Call, response: web.StreamResponse, queue: asyncio.Queue[bytes]
) -> bytes | None:
    """Relay events until the server closes the stream (None), the access token expires
    or the operator's login is revoked: a stream opened with a token lasts no longer than
    the token would let any other request through."""
    principal = call.user
    last_write = next_check = time.monotonic()
    # The token's end on the monotonic clock: wall-clock jumps neither cut nor extend it.
    end = None if principal.expires_at is None else next_check + principal.expires_at - time.time()
    while True:
        now = time.monotonic()
        if end is not None and now >= end:
            return b"expired"
        if principal.session is not None and now >= next_check:
            if not await _login_live(call, principal.session):
                return b"logged-out"
            next_check = now + SESSION_CHECK_SECONDS
        wake = min(last_write + HEARTBEAT_SECONDS, next_check if principal.session else now + 3600)
        if end is not None:
            wake = min(wake, end)
        try:
            data = await asyncio.wait_for(queue.get(), max(wake - now, 0.01))
        except TimeoutError:
            if time.monotonic() >= last_write + HEARTBEAT_SECONDS:
                # A comment line keeps idle connections open through proxies.
                await response.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            continue
        if data == CLOSE:
            return None
        await response.write(b"data: " + data + b"\n\n")
        last_write = time.monotonic()


async def _login_live(call: Call, session: str) -> bool:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        return await users.session_live(conn, session)


ENDPOINTS = [
    Endpoint("GET", "/api/events", stream,
             "Live events (Server-Sent Events): new messages, status and state changes",
             "live", media_type="text/event-stream", errors=(503,)),
]  # fmt: skip
