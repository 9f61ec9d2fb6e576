"""The baseline: a bare aiohttp app that reads the request body and answers 200.

It runs with the same aiohttp server settings as the gateway (`cli/serve.py`): one
process, uvloop as `wa-support serve` uses, no access log, the same body size limit and
listen backlog. Whatever the gateway does beyond this is the cost of ingest.

    python bench/bare_app.py --port 18081
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from cli.loop import run as run_loop

MAX_BODY = 1024 * 1024  # Settings.webhook_max_body_bytes default
WEBHOOK_PATH = "/api/webhooks/whatsapp-business"


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve(host: str, port: int, backlog: int) -> None:
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_get("/health", health)
    app.router.add_post(WEBHOOK_PATH, receive)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=backlog, reuse_port=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"bare app listening on http://{host}:{port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--backlog", type=int, default=2048)
    args = parser.parse_args()
    run_loop(serve(args.host, args.port, args.backlog))


if __name__ == "__main__":
    main()
