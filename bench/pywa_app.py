"""The comparison issue 13 asks for: a pywa + FastAPI + uvicorn webhook app that checks and parses.

pywa (the WhatsApp Cloud API framework) is wired in through its documented FastAPI
integration, `WhatsApp(server=fastapi_app, verify_token=..., app_secret=...,
webhook_endpoint=...)`, so pywa registers the route itself, checks X-Hub-Signature-256
against the app secret (403 on a mismatch, 401/422 without one) and builds its own update
types (`types.Message`, `types.MessageStatus`) for the handlers below. The handlers do no
more than count what reached them: the parse is the work being measured, and the counts
(`GET /bench/parsed`) let the driver and tests/test_bench_pywa.py confirm it happened.

Set up to be fair to it: one uvicorn process like the gateway's one aiohttp process,
uvloop and httptools when installed (uvicorn's standard install), access log off, pywa's
logging at WARNING, backlog 2048; the async client (`pywa_async`), whose handlers run on
the event loop, by default (`--sync` for the thread-pool one). Nothing reaches Meta: no
callback_url, so pywa registers no webhook, and the token is a dummy never used.

pywa answers 200 once the signature checks out and parses in a FastAPI background task
right after the answer, in the same process: the parse costs its CPU (so its requests/s)
but is not inside the measured latency of the request itself.

    python bench/pywa_app.py --port 18083
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

SECRET = "bench-secret"  # bench/make_bodies.py signs with it
PHONE_ID = "100200300400"  # the business number in the bench bodies (tests/support.py)
WEBHOOK_PATH = "/api/webhooks/whatsapp-business"


def create_app(secret: str, phone_id: str, *, sync: bool = False) -> FastAPI:
    if sync:
        from pywa import WhatsApp
    else:
        from pywa_async import WhatsApp  # type: ignore[assignment]

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    seen: dict[str, Any] = {
        "messages": 0,
        "statuses": 0,
        "last_message": None,
        "last_status": None,
    }

    # phone_id matches the bodies, so pywa's own per-update phone filter runs and passes.
    wa = WhatsApp(
        phone_id=phone_id,
        token="bench-dummy-token",
        server=app,
        webhook_endpoint=WEBHOOK_PATH,
        verify_token="bench-verify-token",
        app_secret=secret,
        validate_updates=True,
    )

    @wa.on_message
    def on_message(_: Any, msg: Any) -> None:
        seen["messages"] += 1
        seen["last_message"] = msg

    @wa.on_message_status
    def on_status(_: Any, status: Any) -> None:
        seen["statuses"] += 1
        seen["last_status"] = status

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/bench/parsed")
    async def parsed() -> dict[str, Any]:
        msg = seen["last_message"]
        last = None
        if msg is not None:
            last = {
                "class": type(msg).__name__,
                "id": msg.id,
                "from": msg.from_user.wa_id,
                "name": msg.from_user.name,
                "text": msg.text,
                "type": str(msg.type),
            }
        status = seen["last_status"]
        last_status = None
        if status is not None:
            last_status = {
                "class": type(status).__name__,
                "id": status.id,
                "status": str(status.status),
            }
        return {
            "messages": seen["messages"],
            "statuses": seen["statuses"],
            "last_message": last,
            "last_status": last_status,
        }

    app.state.pywa = wa  # keeps the client (and its handlers) alive beside the app
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18083)
    parser.add_argument("--secret", default=SECRET)
    parser.add_argument("--phone-id", default=PHONE_ID)
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument(
        "--sync", action="store_true", help="pywa's sync client (handlers in a thread pool)"
    )
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pywa").setLevel(logging.WARNING)
    logging.getLogger("pywa_async").setLevel(logging.WARNING)
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    app = create_app(args.secret, args.phone_id, sync=args.sync)
    import pywa

    print(
        f"pywa {pywa.__version__} ({'sync' if args.sync else 'async'}) on uvicorn "
        f"{uvicorn.__version__} (loop {loop}, http {http}) listening on "
        f"http://{args.host}:{args.port}",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop=loop,
        http=http,
        ws="none",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=args.backlog,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
