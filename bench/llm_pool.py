"""LLM pool benchmark: the pool's own overhead per reply, and throughput against a slow model.

    .venv/bin/python bench/llm_pool.py     # ~4.5 minutes; prints the tables for BENCHMARKS.md
    .venv/bin/python bench/llm_pool.py --help

What it does:
  1. starts the OpenRouter fake (`python -m fakes.openrouter`) as its own process, creates a
     fresh Postgres database with a random name (migrated) and picks a unique Redis key prefix;
  2. starts a local Ray (2 CPUs, no dashboard, 150 MB object store, as `actors.runtime.init_ray`)
     and LLMPool actors with the production options (`actors.runtime._options`: num_cpus=0,
     max_concurrency=10000);
  3. overhead, against the instant fake: sequential single requests, interleaved one by one,
     (a) a raw httpx POST of the same chat-completions body (the baseline), (b) the in-process
     `LLMPool.complete([request])`, (c) the same through a Ray LLMPool actor's streaming
     generator, and (d) a Ray actor that streams back a canned result without any HTTP (the Ray
     hop alone). Median and p99 of each; overhead = (b) - (a), (c) - (a). --reps repetitions;
  4. throughput, with the fake answering after 2 s. First a cold burst on each new pool. Then,
     --runs times, interleaved, for each pool: a steady state that keeps 500 requests in flight
     for --window seconds through the shards' own `actors.batching.StreamBatcher` (each reply
     makes room for the next request; callers start spread over one latency), then a burst of
     500 requests sent as 5 Ray calls of 100 at once (what the shards' batchers send), timed
     until the last reply. Pools: 1 and 2 production LLMPool actors and, as a tried fix, 1 actor
     whose OpenRouterClient sends through aiohttp instead of httpx's connection pool (a
     bench-only subclass; production code is not changed). Then the same 500 results canned
     from an actor without HTTP (the Ray stream's share of a burst), and the diagnosis: a bare
     httpx client (OpenRouterClient's limits) and a bare aiohttp session, each keeping 500
     requests in flight to the same fake from this process. CPU of every process and the
     machine's TCP counters (connections opened, listen-queue overflows) are recorded;
  5. prints markdown tables, writes bench/results/llm_pool-<UTC time>/ (results.json,
     summary.md, the fake's log), stops the fake and Ray, drops the database and deletes only
     this run's Redis keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import httpx
import ray
from redis.asyncio import Redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from actors.batching import StreamBatcher  # noqa: E402
from actors.llm.context import LLMProfile, build_messages  # noqa: E402
from actors.llm.pool import LLMPool  # noqa: E402
from actors.runtime import _actor_class, _options, init_ray  # noqa: E402
from actors.wire import LLMRequest, LLMResult  # noqa: E402
from config import Settings  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.records import Turn  # noqa: E402

API_KEY = "bench-key"
MODEL = "bench/primary"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HISTORY = (
    Turn("user", "Hi! Do you ship to Lisbon?"),
    Turn("assistant", "Hello! Yes, we ship to Portugal; delivery takes 3 to 5 working days."),
    Turn("user", "Great. And how much is shipping for one pair of shoes?"),
    Turn("assistant", "Shipping is free on orders over 50 euros, otherwise it is 4.90 euros."),
)
_ids = itertools.count(1)
MODE_LABELS = {
    "a_raw_httpx": "(a) raw httpx POST, same body (baseline)",
    "b_pool_in_process": "(b) LLMPool.complete([one]) in process",
    "c_pool_ray_actor": "(c) LLMPool Ray actor, streaming call",
    "d_ray_hop_only": "(d) Ray actor streaming a canned result (no HTTP)",
}


def new_request() -> LLMRequest:
    i = next(_ids)
    return LLMRequest(i, HISTORY, f"I ordered yesterday, order number {i}. When will it arrive?")


# --------------------------------------------------------------------------- machine and stats


def _run_text(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    from importlib.metadata import version

    return {
        "date": _run_text(["date"]),
        "nproc": _run_text(["nproc"]),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "httpx": httpx.__version__,
        "httpcore": version("httpcore"),
        "aiohttp": aiohttp.__version__,
        "git_commit": _run_text(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_run_text(["git", "status", "--porcelain", "--untracked-files=no"])),
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return ""


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


@dataclass
class CpuSample:
    at: float
    procs: dict[str, float]
    busy: tuple[float, float]
    tcp_opens: int
    listen_overflows: int

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSample:
        procs = {name: proc_cpu(pid) for name, pid in pids.items()}
        opens, overflows = tcp_counters()
        return cls(time.perf_counter(), procs, machine_busy(), opens, overflows)

    def opens_since(self, before: CpuSample) -> int:
        return self.tcp_opens - before.tcp_opens

    def overflows_since(self, before: CpuSample) -> int:
        return self.listen_overflows - before.listen_overflows

    def cores_since(self, before: CpuSample) -> dict[str, float]:
        wall = self.at - before.at
        cores = {k: round((v - before.procs[k]) / wall, 2) for k, v in self.procs.items()}
        busy = self.busy[0] - before.busy[0]
        total = self.busy[1] - before.busy[1]
        cores["machine (all processes)"] = round(busy / total * (os.cpu_count() or 1), 2)
        return cores


def _counter(path: str, section: str, name: str) -> int:
    rows = [line.split() for line in Path(path).read_text().splitlines()]
    header, values = [row for row in rows if row[0] == section][:2]
    return int(values[header.index(name)])


def tcp_counters() -> tuple[int, int]:
    """Machine-wide: TCP connections opened (connect()) and connections a full listen queue
    dropped (the fake listens with aiohttp's default backlog, 128), since boot."""
    return (
        _counter("/proc/net/snmp", "Tcp:", "ActiveOpens"),
        _counter("/proc/net/netstat", "TcpExt:", "ListenOverflows"),
    )


# --------------------------------------------------------------------------- the fake


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_fake(port: int, log: TextIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fakes.openrouter", "--port", str(port), "--api-key", API_KEY],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def fake_control(base: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.post(path, json=body)
        response.raise_for_status()
        return response.json()


async def wait_for_fake(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the fake exited with {proc.returncode}; see its log")
        with contextlib.suppress(httpx.HTTPError):
            await fake_control(base, "/_fake/reset")
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the fake did not start within 20 s")


async def set_latency(base: str, seconds: float) -> None:
    await fake_control(base, "/_fake/reset")  # also drops the recorded requests
    await fake_control(base, "/_fake/faults", {"action": "set_latency", "seconds": seconds})


# --------------------------------------------------------------------------- Ray


class RayHopProbe:
    """An actor shaped like LLMPool.complete that answers at once, without HTTP."""

    async def complete(self, batch: list[LLMRequest]) -> AsyncIterator[list[LLMResult]]:
        # Shaped like LLMPool.complete: lists of finished results (here, all at once).
        yield [LLMResult(request.request_id, "ok", ok=True, model=MODEL) for request in batch]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent by aiohttp: the suggested fix, tried without touching production.

    Only what OpenRouterClient needs: the request's bytes out, status, headers and body back;
    aiohttp's timeouts and errors become httpx's, so its retry rules still apply.
    """

    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit), auto_decompress=False
            )
        t = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(sock_connect=t.get("connect"), sock_read=t.get("read"))
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content,
                timeout=timeout,
            ) as response:
                body = await response.read()
                headers = [(k.decode(), v.decode()) for k, v in response.raw_headers]
                return httpx.Response(
                    response.status, headers=headers, content=body, request=request
                )
        except TimeoutError as exc:
            raise httpx.ReadTimeout(repr(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(repr(exc), request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def start_pools(settings: Settings, count: int, tag: str, db_url: str, redis_url: str) -> list[Any]:
    return [
        _actor_class(LLMPool)
        .options(**_options(settings, f"bench-llm-{tag}-{i}", retries=0))
        .remote(settings, db_url, redis_url)
        for i in range(count)
    ]


async def actor_pid(actor: Any) -> int:
    pid: int = await actor.__ray_call__.remote(lambda _self: os.getpid())
    return pid


async def via_actor(actor: Any, batch: list[LLMRequest]) -> list[LLMResult]:
    results = []
    async for ref in actor.complete.remote(batch):
        results.extend(await ref)  # each stream item is a list of finished results
    return results


# --------------------------------------------------------------------------- overhead


def openrouter_http(settings: Settings) -> httpx.AsyncClient:
    """A client configured like OpenRouterClient's own (headers, limits, timeout)."""
    return httpx.AsyncClient(
        base_url=settings.openrouter_base_url.rstrip("/"),
        timeout=httpx.Timeout(settings.llm_timeout_seconds),
        headers={
            "Authorization": f"Bearer {API_KEY}",
            "HTTP-Referer": "https://github.com/wa-support/wa-support",
            "X-Title": "wa-support",
        },
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
    )


@dataclass
class OverheadRep:
    samples: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            mode: {"median_ms": med(v), "p99_ms": pct(v, 99), "n": len(v)}
            for mode, v in self.samples.items()
        }


async def overhead_phase(
    settings: Settings,
    db_url: str,
    redis_url: str,
    fake_url: str,
    *,
    reps: int,
    n: int,
    warmup: int,
) -> list[OverheadRep]:
    await set_latency(fake_url, 0.0)
    profile = LLMProfile.from_settings(settings, {})
    pool = LLMPool(settings, db_url, redis_url)
    raw = openrouter_http(settings)
    [actor] = start_pools(settings, 1, "overhead", db_url, redis_url)
    probe: Any = ray.remote(RayHopProbe).options(num_cpus=0, max_concurrency=10_000).remote()
    try:
        await pool.ping()
        await actor.ping.remote()

        async def raw_call(req: LLMRequest) -> None:
            body = {
                "model": MODEL,
                "messages": build_messages(profile, req, MODEL),
                "max_tokens": settings.llm_max_tokens,
                "temperature": settings.llm_temperature,
            }
            response = await raw.post("/api/v1/chat/completions", json=body)
            assert response.status_code == 200 and response.json()["choices"]

        async def pool_call(req: LLMRequest) -> None:
            async for chunk in pool.complete([req]):
                assert all(r.ok for r in chunk), chunk

        async def actor_call(req: LLMRequest) -> None:
            [result] = await via_actor(actor, [req])
            assert result.ok, result.error

        async def probe_call(req: LLMRequest) -> None:
            [result] = await via_actor(probe, [req])
            assert result.ok

        # Modes are interleaved request by request (rotating the order), so a noisy
        # moment on the shared machine hits all of them alike.
        modes: dict[str, Callable[[LLMRequest], Awaitable[None]]] = {
            "a_raw_httpx": raw_call,
            "b_pool_in_process": pool_call,
            "c_pool_ray_actor": actor_call,
            "d_ray_hop_only": probe_call,
        }
        names = list(modes)
        out: list[OverheadRep] = []
        for _ in range(reps):
            rep = OverheadRep({name: [] for name in names})
            for i in range(warmup + n):
                shift = i % len(names)
                for name in names[shift:] + names[:shift]:
                    req = new_request()
                    started = time.perf_counter()
                    await modes[name](req)
                    elapsed = (time.perf_counter() - started) * 1000
                    if i >= warmup:
                        rep.samples[name].append(elapsed)
            out.append(rep)
        return out
    finally:
        await pool.close()
        await raw.aclose()
        ray.kill(actor, no_restart=True)
        ray.kill(probe, no_restart=True)


# --------------------------------------------------------------------------- throughput


@dataclass
class PoolConfig:
    label: str
    actors: list[Any]
    pids: dict[str, int] = field(default_factory=dict)


async def burst(actors: list[Any], pids: dict[str, int], total: int, batch: int) -> dict[str, Any]:
    """Send `total` requests as batches of `batch`, all at once; time until the last reply."""
    requests = [new_request() for _ in range(total)]
    batches = [requests[i : i + batch] for i in range(0, total, batch)]
    arrivals: list[float] = []
    failed = 0
    cpu0 = CpuSample.take(pids)
    started = cpu0.at

    async def drain(actor: Any, b: list[LLMRequest]) -> None:
        nonlocal failed
        async for ref in actor.complete.remote(b):
            chunk: list[LLMResult] = await ref
            for result in chunk:
                arrivals.append(time.perf_counter() - started)
                failed += not result.ok

    await asyncio.gather(*(drain(actors[k % len(actors)], b) for k, b in enumerate(batches)))
    cpu1 = CpuSample.take(pids)
    elapsed = max(arrivals)
    return {
        "cpu_seconds": {k: round(v - cpu0.procs[k], 2) for k, v in cpu1.procs.items()},
        "tcp_opens": cpu1.opens_since(cpu0),
        "listen_overflows": cpu1.overflows_since(cpu0),
        "replies": len(arrivals),
        "failed": failed,
        "first_s": round(min(arrivals), 3),
        "median_s": round(med(arrivals), 3),
        "last_s": round(elapsed, 3),
        "replies_per_s": round(len(arrivals) / elapsed, 1),
    }


async def closed_loop(
    call: Callable[[], Awaitable[bool]],
    pids: dict[str, int],
    *,
    inflight: int,
    warm: float,
    window: float,
    stagger: float,
) -> dict[str, Any]:
    """Keep `inflight` calls outstanding (each reply starts the next call); measure a window.

    The callers start spread over `stagger` seconds (one model latency), so replies arrive
    evenly rather than in waves of `inflight` at once, which a short window would count in
    whole waves.
    """
    done: list[tuple[float, float, bool]] = []  # (finished at, latency, ok)
    stop = False

    async def worker(k: int) -> None:
        await asyncio.sleep(k * stagger / inflight)
        while not stop:
            started = time.perf_counter()
            ok = await call()
            finished = time.perf_counter()
            done.append((finished, finished - started, ok))

    began = time.perf_counter()
    tasks = [asyncio.create_task(worker(k)) for k in range(inflight)]
    await asyncio.sleep(warm)
    cpu0 = CpuSample.take(pids)
    await asyncio.sleep(window)
    cpu1 = CpuSample.take(pids)
    stop = True
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)  # let every call finish
    inside = [(lat, ok) for at, lat, ok in done if cpu0.at <= at < cpu1.at]
    latencies = [lat * 1000 for lat, _ in inside] or [math.nan]
    wall = cpu1.at - cpu0.at
    per_second = [0] * (int(max((at for at, _, _ in done), default=began) - began) + 1)
    for at, _, _ in done:
        per_second[int(at - began)] += 1
    return {
        "replies_per_second_from_start": per_second,
        "replies": len(inside),
        "failed": sum(not ok for _, ok in inside),
        "window_s": round(wall, 2),
        "window_start": cpu0.at,
        "window_end": cpu1.at,
        "replies_per_s": round(len(inside) / wall, 1),
        "latency_median_ms": round(med(latencies), 1),
        "latency_p99_ms": round(pct(latencies, 99), 1),
        "cores": cpu1.cores_since(cpu0),
        "tcp_opens_per_s": round(cpu1.opens_since(cpu0) / wall, 1),
    }


async def steady(
    actors: list[Any],
    pids: dict[str, int],
    *,
    inflight: int,
    warm: float,
    window: float,
    batch: int,
    stagger: float,
) -> dict[str, Any]:
    """500 conversations waiting, through the shards' own StreamBatcher (batches of <= 100)."""
    calls: list[tuple[float, int]] = []

    def call(i: int, b: list[Any]) -> Any:
        calls.append((time.perf_counter(), len(b)))
        return actors[i].complete.remote(b)

    batcher: StreamBatcher[LLMRequest, LLMResult] = StreamBatcher(
        call, len(actors), max_batch=batch, max_delay=0.005, name="bench"
    )

    async def one() -> bool:
        return (await batcher.request(new_request())).ok

    try:
        result = await closed_loop(
            one, pids, inflight=inflight, warm=warm, window=window, stagger=stagger
        )
    finally:
        await batcher.close()
    sizes = [n for at, n in calls if result["window_start"] <= at < result["window_end"]]
    result["ray_calls_per_s"] = round(len(sizes) / result["window_s"], 1)
    result["batch_size_median"] = med(sizes) if sizes else 0
    return result


def raw_clients(
    settings: Settings,
) -> tuple[dict[str, Callable[[], Awaitable[bool]]], Callable[[], Awaitable[None]]]:
    """The two bare HTTP clients of the diagnosis, each making the pool's request to the fake."""
    profile = LLMProfile.from_settings(settings, {})
    request = new_request()
    body = {
        "model": MODEL,
        "messages": build_messages(profile, request, MODEL),
        "max_tokens": settings.llm_max_tokens,
        "temperature": settings.llm_temperature,
    }
    url = settings.openrouter_base_url.rstrip("/") + "/api/v1/chat/completions"
    httpx_client = openrouter_http(settings)
    session = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {API_KEY}"},
        connector=aiohttp.TCPConnector(limit=1000),
        timeout=aiohttp.ClientTimeout(total=settings.llm_timeout_seconds),
    )

    async def via_httpx() -> bool:
        response = await httpx_client.post(url, json=body)
        return response.status_code == 200 and bool(response.json()["choices"])

    async def via_aiohttp() -> bool:
        async with session.post(url, json=body) as response:
            return response.status == 200 and bool((await response.json())["choices"])

    async def close() -> None:
        await httpx_client.aclose()
        await session.close()

    clients: dict[str, Callable[[], Awaitable[bool]]] = {
        "httpx.AsyncClient, OpenRouterClient's limits (1000 / 200 keep-alive)": via_httpx,
        "aiohttp.ClientSession (TCPConnector limit 1000)": via_aiohttp,
    }
    return clients, close


async def throughput_phase(
    settings: Settings,
    db_url: str,
    redis_url: str,
    fake_url: str,
    fake_pid: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    configs = [
        PoolConfig(
            f"{n} LLMPool actor{'s' if n > 1 else ''}",
            start_pools(settings, n, f"tp{n}", db_url, redis_url),
        )
        for n in args.actors
    ]
    probe: Any = ray.remote(RayHopProbe).options(num_cpus=0, max_concurrency=10_000).remote()
    diag, close_diag = raw_clients(settings)
    driver = {"driver (load, StreamBatcher)": os.getpid(), "fake OpenRouter": fake_pid}
    try:
        for c in configs:
            await asyncio.gather(*(a.ping.remote() for a in c.actors))
            c.pids = {f"actor {i + 1}": await actor_pid(a) for i, a in enumerate(c.actors)}
        await set_latency(fake_url, args.latency)
        result: dict[str, Any] = {
            "cold_burst": {},
            "runs": [],
            "diagnosis": [],
            "ray_only_burst": [],
        }
        # The first burst on new actors also opens every connection: reported apart.
        for c in configs:
            result["cold_burst"][c.label] = await burst(
                c.actors, {**driver, **c.pids}, args.inflight, args.batch
            )
        for run in range(1, args.runs + 1):
            for c in configs:
                await set_latency(fake_url, args.latency)
                s = await steady(
                    c.actors,
                    {**driver, **c.pids},
                    inflight=args.inflight,
                    warm=args.warm,
                    window=args.window,
                    batch=args.batch,
                    stagger=args.latency,
                )
                # Right after the steady state: the pool's connections are as warm as it kept them.
                b = await burst(c.actors, {**driver, **c.pids}, args.inflight, args.batch)
                result["runs"].append({"run": run, "config": c.label, "burst": b, "steady": s})
                print(
                    f"  run {run}, {c.label}: burst {b['replies_per_s']}/s (last reply "
                    f"{b['last_s']} s, {b['tcp_opens']} TCP opens, {b['listen_overflows']} "
                    f"listen overflows); steady {s['replies_per_s']}/s, p50 "
                    f"{s['latency_median_ms']} ms, p99 {s['latency_p99_ms']} ms, "
                    f"{s['tcp_opens_per_s']} TCP opens/s; cores {s['cores']}",
                    flush=True,
                )
            # What the Ray stream alone costs a burst: the same 500 results, canned, no HTTP.
            r = await burst([probe], driver, args.inflight, args.batch)
            result["ray_only_burst"].append(r)
            print(
                f"  run {run}, Ray stream only: 500 canned results in {r['last_s']} s", flush=True
            )
            for label, call in diag.items():
                await set_latency(fake_url, args.latency)
                d = await closed_loop(
                    call,
                    driver,
                    inflight=args.inflight,
                    warm=args.latency + 0.5,
                    window=args.diag_window,
                    stagger=args.latency,
                )
                result["diagnosis"].append({"run": run, "client": label, "steady": d})
                print(
                    f"  run {run}, bare {label}: {d['replies_per_s']}/s, p50 "
                    f"{d['latency_median_ms']} ms, p99 {d['latency_p99_ms']} ms, "
                    f"{d['tcp_opens_per_s']} TCP opens/s; cores {d['cores']}",
                    flush=True,
                )
        return result
    finally:
        await close_diag()
        ray.kill(probe, no_restart=True)
        for c in configs:
            for a in c.actors:
                with contextlib.suppress(Exception):
                    await a.close.remote()
                ray.kill(a, no_restart=True)


# --------------------------------------------------------------------------- report


def _range(values: Sequence[float], digits: int = 2) -> str:
    lo, mid, hi = (round(v, digits) for v in (min(values), med(values), max(values)))
    return f"{mid:g} ({lo:g}..{hi:g})"


def report(info: dict[str, Any], overhead: list[OverheadRep], tp: dict[str, Any], args: Any) -> str:
    target = 0.9 * args.inflight / args.latency
    lines = [
        f"Machine: nproc {info['nproc']}, CPU {info['cpu_model']}, {info['ram_gib']} GiB RAM, "
        f"kernel {info['kernel']}; Python {info['python']}, Ray {info['ray']}, "
        f"httpx {info['httpx']} (httpcore {info['httpcore']}), aiohttp {info['aiohttp']}.",
        f"Date: {info['date']}; commit {info['git_commit']}"
        f"{' (uncommitted changes in the tree)' if info['git_dirty'] else ''}; "
        f"load average at start {info['loadavg_start']}, at end {info.get('loadavg_end', '')}.",
        "",
        f"### Overhead per reply, instant fake ({args.reps} repetitions x {args.n} sequential "
        f"requests per mode after {args.warmup} warm-up; median across repetitions, "
        "(min..max) across repetitions)",
        "",
        "| mode | median ms | p99 ms | overhead vs (a), median ms | overhead vs (a), p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    summaries = [rep.summary() for rep in overhead]
    for mode in summaries[0]:
        medians = [s[mode]["median_ms"] for s in summaries]
        p99s = [s[mode]["p99_ms"] for s in summaries]
        if mode in ("a_raw_httpx", "d_ray_hop_only"):
            extra = "| | |"
        else:
            d_med = [s[mode]["median_ms"] - s["a_raw_httpx"]["median_ms"] for s in summaries]
            d_p99 = [s[mode]["p99_ms"] - s["a_raw_httpx"]["p99_ms"] for s in summaries]
            extra = f"| {_range(d_med)} | {_range(d_p99)} |"
        lines.append(f"| {MODE_LABELS[mode]} | {_range(medians)} | {_range(p99s)} {extra}")
    lines += [
        "",
        f"### Throughput, fake latency {args.latency:g} s, {args.inflight} requests in flight "
        f"(target >= 90% of {args.inflight}/{args.latency:g} = {target:g} replies/s)",
        "",
        "Cold first burst (new actors, no connection open yet): "
        + "; ".join(
            f"{label}: {b['replies_per_s']}/s, last reply at {b['last_s']} s "
            f"({b['failed']} failed, {b['tcp_opens']} TCP opens, "
            f"{b['listen_overflows']} listen-queue overflows)"
            for label, b in tp["cold_burst"].items()
        ),
        "",
        f"Median of {args.runs} runs, (min..max). Steady: {args.inflight} in flight through "
        f"StreamBatcher, {args.window:g} s window after {args.warm:g} s. Burst, right after "
        f"it: {args.inflight} requests as {args.inflight // args.batch} Ray calls of "
        f"{args.batch}, sent at once. TCP counters are machine-wide.",
        "",
        "| pool | burst replies/s | burst: first / last reply s | steady replies/s "
        "| steady p50 ms | steady p99 ms | failed | Ray calls/s (median batch) "
        "| steady TCP opens/s | burst TCP opens, listen overflows | target met (medians) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    labels = list(dict.fromkeys(r["config"] for r in tp["runs"]))
    for label in labels:
        runs = [r for r in tp["runs"] if r["config"] == label]
        b = [r["burst"] for r in runs]
        s = [r["steady"] for r in runs]
        failed = sum(x["failed"] for x in b) + sum(x["failed"] for x in s)
        met = ", ".join(
            f"{kind} {'yes' if med([x['replies_per_s'] for x in xs]) >= target else '**no**'}"
            for kind, xs in (("burst", b), ("steady", s))
        )
        lines.append(
            f"| {label} | {_range([x['replies_per_s'] for x in b], 1)} "
            f"| {med([x['first_s'] for x in b]):.2f} / {_range([x['last_s'] for x in b], 2)} "
            f"| {_range([x['replies_per_s'] for x in s], 1)} "
            f"| {_range([x['latency_median_ms'] for x in s], 0)} "
            f"| {_range([x['latency_p99_ms'] for x in s], 0)} | {failed} "
            f"| {_range([x['ray_calls_per_s'] for x in s], 1)} "
            f"({med([x['batch_size_median'] for x in s]):g}) "
            f"| {_range([x['tcp_opens_per_s'] for x in s], 0)} "
            f"| {med([x['tcp_opens'] for x in b]):g}, {med([x['listen_overflows'] for x in b]):g} "
            f"| {met} |"
        )
    ray_only = [x["last_s"] * 1000 for x in tp["ray_only_burst"]]
    lines += [
        "",
        f"Ray stream alone (the burst's {args.inflight} results, canned, from an actor with no "
        f"HTTP, same {args.inflight // args.batch} streams): all back in {_range(ray_only, 0)} ms.",
    ]
    lines += [
        "",
        f"Diagnosis: a bare HTTP client in the driver process, {args.inflight} requests in flight "
        f"to the same fake ({args.diag_window:g} s window after {args.latency + 0.5:g} s):",
        "",
        "| client | replies/s | p50 ms | p99 ms | client process, cores | TCP opens/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label in dict.fromkeys(d["client"] for d in tp["diagnosis"]):
        ds = [d["steady"] for d in tp["diagnosis"] if d["client"] == label]
        lines.append(
            f"| {label} | {_range([x['replies_per_s'] for x in ds], 1)} "
            f"| {_range([x['latency_median_ms'] for x in ds], 0)} "
            f"| {_range([x['latency_p99_ms'] for x in ds], 0)} "
            f"| {_range([x['cores']['driver (load, StreamBatcher)'] for x in ds], 2)} "
            f"| {_range([x['tcp_opens_per_s'] for x in ds], 0)} |"
        )
    lines += ["", "CPU in cores during each steady window; CPU seconds of each burst:", ""]
    for r in tp["runs"]:
        cores = ", ".join(f"{k} {v}" for k, v in r["steady"]["cores"].items())
        spent = ", ".join(f"{k} {v}" for k, v in r["burst"]["cpu_seconds"].items())
        lines.append(f"- run {r['run']}, {r['config']}: steady {cores}; burst {spent}")
    lines += ["", "Replies in each second of each steady state, from its start:", ""]
    for r in tp["runs"]:
        timeline = " ".join(str(n) for n in r["steady"]["replies_per_second_from_start"])
        lines.append(f"- run {r['run']}, {r['config']}: {timeline}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


async def bench(args: argparse.Namespace, fake_url: str, fake_pid: int) -> dict[str, Any]:
    admin = await asyncpg.connect(args.pg_dsn)
    name = f"bench_llm_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    db_url = urlunsplit(urlsplit(args.pg_dsn)._replace(path=f"/{name}"))
    prefix = f"bench-llm-{uuid.uuid4().hex[:8]}:"
    redis = Redis.from_url(args.redis_url)
    try:
        conn = await asyncpg.connect(db_url)
        await migrate(conn)
        await conn.close()
        settings = make_settings(fake_url, db_url, args.redis_url, prefix, args.namespace)
        print("overhead: sequential single requests against the instant fake", flush=True)
        overhead = await overhead_phase(
            settings,
            db_url,
            args.redis_url,
            fake_url,
            reps=args.reps,
            n=args.n,
            warmup=args.warmup,
        )
        for i, rep in enumerate(overhead):
            print(f"  rep {i + 1}: {json.dumps(rep.summary())}", flush=True)
        print(f"throughput: fake latency {args.latency} s", flush=True)
        tp = await throughput_phase(settings, db_url, args.redis_url, fake_url, fake_pid, args)
        return {"overhead": overhead, "throughput": tp}
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=500):
            await redis.delete(key)
        await redis.aclose()
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


def make_settings(
    fake_url: str, db_url: str, redis_url: str, prefix: str, namespace: str
) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        openrouter_api_key=API_KEY,  # type: ignore[arg-type]
        openrouter_base_url=fake_url,
        openrouter_primary_model=MODEL,
        openrouter_fallback_model=[],
        database_url=db_url,
        redis_url=redis_url,
        redis_key_prefix=prefix,
        log_level="WARNING",
        ray_address=None,
        ray_namespace=namespace,
        ray_num_cpus=2,
        ray_object_store_mb=150,
        llm_requests_per_minute=0,
        llm_tokens_per_minute=0,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="overhead repetitions (3)")
    p.add_argument("--n", type=int, default=300, help="requests per mode per repetition (300)")
    p.add_argument("--warmup", type=int, default=50, help="warm-up requests per mode (50)")
    p.add_argument("--runs", type=int, default=3, help="throughput runs (3)")
    p.add_argument("--latency", type=float, default=2.0, help="fake latency, seconds (2)")
    p.add_argument("--inflight", type=int, default=500, help="requests in flight (500)")
    p.add_argument("--batch", type=int, default=100, help="requests per Ray call (100)")
    p.add_argument("--window", type=float, default=10.0, help="steady window, seconds (10)")
    p.add_argument("--warm", type=float, default=3.0, help="steady ramp before the window (3)")
    p.add_argument(
        "--diag-window", type=float, default=5.0, help="bare-client diagnosis window, s (5)"
    )
    p.add_argument(
        "--patched",
        dest="patched",
        action="store_true",
        help="also run the bench-only aiohttp-transport variant (only for code from before "
        "OpenRouterClient moved to aiohttp; it swaps an httpx client that no longer exists)",
    )
    p.add_argument("--no-patched", dest="patched", action="store_false", help=argparse.SUPPRESS)
    p.add_argument(
        "--actors",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2],
        help="LLMPool actor counts to compare (1,2)",
    )
    p.add_argument(
        "--pg-dsn",
        default=os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.pop("RAY_ADDRESS", None)  # always a private local Ray, never a shared cluster
    args.namespace = f"bench-llm-{uuid.uuid4().hex[:8]}"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = BENCH / "results" / f"llm_pool-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}"
    with (out / "fake.log").open("w") as log:
        fake = start_fake(port, log)
        try:
            asyncio.run(wait_for_fake(fake_url, fake))
            init_ray(make_settings(fake_url, "", args.redis_url, "", args.namespace))
            results = asyncio.run(bench(args, fake_url, fake.pid))
        finally:
            ray.shutdown()
            fake.terminate()
            try:
                fake.wait(timeout=10)
            except subprocess.TimeoutExpired:
                fake.kill()
                fake.wait()
    info["loadavg_end"] = _loadavg()
    summary = report(info, results["overhead"], results["throughput"], args)
    raw = {
        "machine": info,
        "args": vars(args),
        "overhead": [rep.summary() for rep in results["overhead"]],
        "throughput": results["throughput"],
    }
    (out / "results.json").write_text(json.dumps(raw, indent=2, default=str))
    (out / "summary.md").write_text(summary + "\n")
    print()
    print(summary)
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
