"""Fallback load generator when wrk cannot be installed: aiohttp clients in several processes.

It reads the same body file as bench/webhook.lua, walks it the same way (process p takes
blocks p, p+P, p+2P, ... of BLOCK records from START) and prints the same "WRK_JSON {...}"
line, so bench/ingest.py treats both alike. It costs far more CPU per request than wrk,
which on a small machine takes CPU from the server under test: prefer wrk.

    python bench/pyload.py URL --connections 100 --duration 10 --file F --start 0 --count N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
from typing import Any

import aiohttp


def worker(pid: int, args: argparse.Namespace, out: Any) -> None:
    out.put(asyncio.run(_worker(pid, args)))


async def _worker(pid: int, args: argparse.Namespace) -> dict[str, Any]:
    conns = args.connections // args.processes + (
        1 if pid < args.connections % args.processes else 0
    )
    fh = open(args.file, "rb")  # noqa: ASYNC230
    width = len(fh.readline())
    state = {"k": 0, "pos": args.block, "buf": b"", "blocks": 0, "wraps": 0}
    stats = {
        "sent": 0,
        "ok": 0,
        "non2xx": 0,
        "stored": 0,
        "dup": 0,
        "bytes": 0,
        "connect": 0,
        "read": 0,
        "write": 0,
        "timeout": 0,
    }
    latencies: list[int] = []

    def next_record() -> tuple[str, bytes]:
        if state["pos"] >= args.block:
            rec = args.start + (state["k"] * args.processes + pid) * args.block
            if rec + args.block > args.start + args.count:
                state["k"] = 0
                state["wraps"] += 1
                rec = args.start + pid * args.block
            fh.seek(rec * width)
            state["buf"] = fh.read(args.block * width)
            state["k"] += 1
            state["blocks"] = max(state["blocks"], state["k"])
            state["pos"] = 0
        off = state["pos"] * width
        state["pos"] += 1
        line = state["buf"][off : off + width - 1]
        return line[:71].decode(), line[72:]

    deadline = time.monotonic() + args.duration
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def loop() -> None:
            while time.monotonic() < deadline:
                sig, body = next_record()
                stats["sent"] += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(
                        args.url,
                        data=body,
                        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
                    ) as resp:
                        text = await resp.read()
                except TimeoutError:
                    stats["timeout"] += 1
                    continue
                except aiohttp.ClientConnectionError:
                    stats["read"] += 1
                    continue
                if time.monotonic() > deadline:
                    return  # answered after the end: not counted, as wrk does
                latencies.append(int((time.perf_counter() - t0) * 1e6))
                stats["bytes"] += len(text)
                if 200 <= resp.status < 300:
                    stats["ok"] += 1
                    if b'"stored": 1' in text:
                        stats["stored"] += 1
                    elif b'"duplicates": 1' in text:
                        stats["dup"] += 1
                else:
                    stats["non2xx"] += 1

        tasks = [asyncio.create_task(loop()) for _ in range(conns)]
        await asyncio.wait(tasks, timeout=args.duration + args.timeout + 5)
        for t in tasks:
            t.cancel()
    return {
        "stats": stats,
        "latencies": latencies,
        "blocks": state["blocks"],
        "wraps": state["wraps"],
    }


def percentile(values: list[int], p: float) -> int:
    if not values:
        return 0
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--file", required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--block", type=int, default=256)
    args = parser.parse_args()

    out: Any = mp.Queue()
    started = time.monotonic()
    procs = [mp.Process(target=worker, args=(p, args, out)) for p in range(args.processes)]
    for p in procs:
        p.start()
    parts = [out.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = min(time.monotonic() - started, args.duration)
    lat = sorted(x for part in parts for x in part["latencies"])
    tot: dict[str, int] = {}
    for part in parts:
        for key, value in part["stats"].items():
            tot[key] = tot.get(key, 0) + value
    mean = sum(lat) / len(lat) if lat else 0.0
    stdev = (sum((x - mean) ** 2 for x in lat) / len(lat)) ** 0.5 if lat else 0.0
    result: dict[str, Any] = {
        "duration_us": int(elapsed * 1e6),
        "requests": len(lat),
        "bytes": tot["bytes"],
        "errors": {k: tot[k] for k in ("connect", "read", "write", "timeout")}
        | {"status": tot["non2xx"]},
        "latency_us": {
            "mean": round(mean, 1),
            "stdev": round(stdev, 1),
            "max": lat[-1] if lat else 0,
            **{f"p{p}".replace(".", ""): percentile(lat, p) for p in (50, 75, 90, 99, 99.9)},
        },
        "lua": {
            "sent": tot["sent"],
            "wraps": sum(p["wraps"] for p in parts),
            "ok": tot["ok"],
            "non2xx": tot["non2xx"],
            "stored": tot["stored"],
            "dup": tot["dup"],
            "max_blocks": max(p["blocks"] for p in parts),
            "block": args.block,
            "threads": [],
        },
    }
    print(
        f"{len(lat)} requests in {elapsed:.2f}s, {len(lat) / elapsed:.0f} requests/s, "
        f"p50 {result['latency_us']['p50'] / 1000:.2f} ms, "
        f"p99 {result['latency_us']['p99'] / 1000:.2f} ms"
    )
    print("WRK_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
