"""HTTP client stacks under load: httpx over aiohttp (httpx-aiohttp) vs aiohttp vs httpx.

    .venv/bin/python bench/http_clients.py            # ~2 minutes; prints a markdown table
    .venv/bin/python bench/http_clients.py --help

What it does: starts a small aiohttp server in a process of its own (each POST answers a
Graph-API-like JSON body after --latency seconds), then, in this process, for each client
stack in turn and --runs times interleaved, keeps --concurrency POSTs in flight until
--requests have been answered. Each stack uses one client with a pool of --pool connections
(what the delivery actor and the LLM pool configure), warmed up first. Reported per stack:
requests per second and CPU seconds of this (the client's) process per 1000 requests, the
median over runs with (min..max), and the TCP connections the server saw opened.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

BODY = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "4915550001",
    "type": "text",
    "text": {"body": "Your parcel left the warehouse.", "preview_url": False},
}


def _serve(port: int, latency: float, ready: Any) -> None:
    import uvloop

    peers: set[object] = set()  # client (host, port) pairs: one per TCP connection

    async def post(request: web.Request) -> web.Response:
        await request.read()
        if request.transport is not None:
            peers.add(request.transport.get_extra_info("peername"))
        await asyncio.sleep(latency)
        return web.json_response({"messages": [{"id": "wamid.bench"}]})

    async def connections(request: web.Request) -> web.Response:
        seen = len(peers)
        peers.clear()
        return web.json_response({"opened": seen})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/messages", post)
        app.router.add_get("/connections", connections)

        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
        await site.start()
        ready.set()
        await asyncio.Event().wait()

    uvloop.run(main())


Post = Callable[[], Awaitable[None]]


async def _load(post: Post, requests: int, concurrency: int) -> tuple[float, float]:
    """Keep `concurrency` posts in flight until `requests` are done: (seconds, cpu seconds)."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await post()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


class Stack:
    name = ""

    def __init__(self, url: str, pool: int) -> None:
        self.url = url
        self.pool = pool

    async def open(self) -> None: ...

    async def post(self) -> None: ...

    async def close(self) -> None: ...


class HttpxAiohttp(Stack):
    name = "httpx over aiohttp (httpx-aiohttp 0.2.0)"

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=self.pool, keepalive_expiry=60)
        self.client = httpx.AsyncClient(
            transport=AiohttpTransport(limits=limits), timeout=httpx.Timeout(15.0)
        )

    async def post(self) -> None:
        response = await self.client.post(self.url, json=BODY)
        assert response.json()["messages"][0]["id"]

    async def close(self) -> None:
        await self.client.aclose()


class Aiohttp(Stack):
    name = "aiohttp"

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.pool, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=15.0),
        )

    async def post(self) -> None:
        async with self.session.post(self.url, json=BODY) as response:
            assert (await response.json())["messages"][0]["id"]

    async def close(self) -> None:
        await self.session.close()


class Httpx(Stack):
    name = "httpx (httpcore pool), baseline"

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=self.pool, max_keepalive_connections=50)
        self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(15.0))

    async def post(self) -> None:
        response = await self.client.post(self.url, json=BODY)
        assert response.json()["messages"][0]["id"]

    async def close(self) -> None:
        await self.client.aclose()


async def _opened(base: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{base}/connections") as r:
        return int((await r.json())["opened"])


async def bench(args: argparse.Namespace) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, args.latency, ready), daemon=True)
    server.start()
    ready.wait(10)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/messages"
    kinds: list[type[Stack]] = [HttpxAiohttp, Aiohttp, Httpx]
    results: dict[str, list[tuple[float, float, int]]] = {k.name: [] for k in kinds}
    try:
        for run in range(args.runs):
            for kind in kinds:
                stack = kind(url, args.pool)
                await stack.open()
                try:
                    await _load(stack.post, args.concurrency, args.concurrency)  # warm up
                    await _opened(base)  # forget the warm-up's connections
                    seconds, cpu = await _load(stack.post, args.requests, args.concurrency)
                    new = await _opened(base)
                finally:
                    await stack.close()
                results[kind.name].append(
                    (args.requests / seconds, cpu * 1000 / args.requests, new)
                )
                print(
                    f"run {run + 1} {kind.name}: {args.requests / seconds:.0f} req/s, "
                    f"{cpu * 1000 / args.requests:.3f} cpu s/1000, {new} connections used",
                    flush=True,
                )
    finally:
        server.kill()

    def summary(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}..{max(values):{fmt}})"

    print()
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"httpx {httpx.__version__}, aiohttp {aiohttp.__version__}; "
        f"{args.requests} POSTs, {args.concurrency} in flight, {args.latency * 1000:.0f} ms "
        f"server latency, pool {args.pool}, {args.runs} runs, median (min..max)"
    )
    print()
    print("| client stack | requests/s | client CPU s per 1000 requests | connections used |")
    print("|---|---:|---:|---:|")
    for name, rows in results.items():
        print(
            f"| {name} | {summary([r[0] for r in rows], '.0f')} | "
            f"{summary([r[1] for r in rows], '.3f')} | "
            f"{summary([float(r[2]) for r in rows], '.0f')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.02, help="server delay, seconds")
    parser.add_argument("--pool", type=int, default=1000, help="connections per client")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import uvloop

    uvloop.run(bench(args))


if __name__ == "__main__":
    main()
