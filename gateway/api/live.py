"""GET /api/events: the Server-Sent Events stream the dashboard pages listen to."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from gateway.api.routing import ApiError, Call, Endpoint
from gateway.events import CLOSE

HEARTBEAT_SECONDS = 15.0


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
        while True:
            try:
                data = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                # A comment line keeps idle connections open through proxies.
                await response.write(b": keep-alive\n\n")
                continue
            if data == CLOSE:
                break
            await response.write(b"data: " + data + b"\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        events.unsubscribe(queue)
        with contextlib.suppress(Exception):
            await response.write_eof()
    return response


ENDPOINTS = [
    Endpoint("GET", "/api/events", stream,
             "Live events (Server-Sent Events): new messages, status and state changes",
             "live", media_type="text/event-stream", errors=(503,)),
]  # fmt: skip
