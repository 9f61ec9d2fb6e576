"""Signed-webhook ingest benchmark: the gateway beside a bare aiohttp app and a pywa app, one run.

    bench/run_ingest.sh            # installs wrk if missing, then runs this driver
    python bench/ingest.py --help  # the driver alone

What it does:
  1. creates a fresh Postgres database with a random name, applies the migrations;
  2. starts bench/bare_app.py (reads the body, answers 200), bench/gateway_app.py (the real
     gateway with a no-op dispatcher: signature, parse, Postgres group commit, then 200) and,
     unless --no-pywa, bench/pywa_app.py (pywa + FastAPI + uvicorn: pywa checks the
     signature and parses each update into its types; nothing is stored);
  3. warms them up, then, interleaved, runs wrk (-t2, --latency, bench/webhook.lua) against
     each at every connection count, --runs times; every gateway and pywa request carries a
     fresh signed body with a unique wamid (bench/make_bodies.py), so each one is a real
     insert for the gateway and never a duplicate pywa would skip unparsed;
  4. after each gateway run checks in Postgres that every 2xx answer is a stored message,
     and reads the gateway's /metrics (commit batch sizes); after each pywa run checks that
     pywa's message handler got a parsed `types.Message` for every 2xx answer;
  5. optionally profiles one extra gateway run with py-spy (where the CPU goes);
  6. prints a markdown table (medians over the runs) and writes everything to
     bench/results/<UTC time>/ (results.json, summary.md, raw wrk output, server logs);
  7. stops the servers and drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.make_bodies import SECRET, append_records, phone_pool  # noqa: E402
from store.migrate import migrate  # noqa: E402

WEBHOOK_PATH = "/api/webhooks/whatsapp-business"
BLOCK = 256  # records a wrk thread reads at a time (bench/webhook.lua)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- machine


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
    import aiohttp
    import pydantic

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": _run_text(["date"]),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "nproc_cmd": _run_text(["nproc"]),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _run_text(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "asyncpg": asyncpg.__version__,
        "pydantic": pydantic.__version__,
        "pywa": version("pywa"),
        "fastapi": version("fastapi"),
        "uvicorn": version("uvicorn"),
        "uvloop": version("uvloop"),
        "httptools": version("httptools"),
        "git_commit": _run_text(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_run_text(["git", "status", "--porcelain", "--untracked-files=no"])),
    }


# --------------------------------------------------------------------------- CPU accounting


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _postgres_cpu() -> float:
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        if name.startswith("postgres"):
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def _machine_busy() -> tuple[float, float]:
    parts = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / CLK_TCK, sum(parts) / CLK_TCK


@dataclass
class CpuSample:
    server: float
    postgres: float
    children: float
    busy: float
    wall: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSample:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, _ = _machine_busy()
        return cls(
            _proc_cpu(server_pid),
            _postgres_cpu(),
            ru.ru_utime + ru.ru_stime,
            busy,
            time.monotonic(),
        )

    def cores_since(self, before: CpuSample) -> dict[str, float]:
        wall = self.wall - before.wall
        cores = {
            "server": (self.server - before.server) / wall,
            "postgres": (self.postgres - before.postgres) / wall,
            "loadgen": (self.children - before.children) / wall,
            "machine": (self.busy - before.busy) / wall,
        }
        # Kernel work not charged to a process (loopback softirqs) and anything else running.
        rest = cores["machine"] - cores["server"] - cores["postgres"] - cores["loadgen"]
        cores["other"] = max(rest, 0.0)  # sampled at slightly different instants: never below 0
        return {k: round(v, 2) for k, v in cores.items()}


def wait_quiet(threshold: float = 0.25, within: float = 20.0) -> float:
    """Wait until the machine is nearly idle (other work would skew a run); return its load."""
    deadline = time.monotonic() + within
    while True:
        b0, t0 = _machine_busy(), time.monotonic()
        time.sleep(0.5)
        load = (_machine_busy()[0] - b0[0]) / (time.monotonic() - t0)
        if load <= threshold or time.monotonic() > deadline:
            return round(load, 2)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
            return bytes(r.read())

    def wait_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            with contextlib.suppress(OSError):
                self.get("/health", timeout=1.0)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within {within} s; see {self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(name: str, args: list[str], out_dir: Path) -> Server:
    port = free_port()
    log = out_dir / f"{name}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    server = Server(name, port, proc, log)
    server.wait_ready()
    return server


# --------------------------------------------------------------------------- bodies


def with_bsuid(body: bytes) -> bytes:
    """The gateway's message body plus the sender's business-scoped user id.

    pywa 4.5 builds its `User` from `contacts[0].user_id` (BSUID, which Meta's webhooks now
    carry) and fails on a contact without one, so pywa's bodies carry it; otherwise they are
    the gateway's messages byte for byte, re-signed.
    """
    payload = orjson.loads(body)
    contact = payload["entry"][0]["changes"][0]["value"]["contacts"][0]
    contact["user_id"] = f"DE.{int(contact['wa_id']):020d}"  # one per customer, fixed width
    return orjson.dumps(payload)


def append_bsuid_records(
    path: Path, start: int, count: int, *, tag: str, phones: list[str], secret: str = SECRET
) -> int:
    return append_records(
        path, start, count, tag=tag, phones=phones, secret=secret, rewrite=with_bsuid
    )


class BodyPool:
    """A file of signed bodies; gateway and pywa runs take fresh, never-sent records from it."""

    def __init__(self, path: Path, threads: int, *, bsuid: bool = False) -> None:
        self.path = path
        self.threads = threads
        self.size = 0
        self.next_fresh = 0
        self.tag = f"{random.getrandbits(32):08x}"
        self.phones = phone_pool(10_000, seed=1)
        self.append = append_bsuid_records if bsuid else append_records

    def ensure(self, fresh: int) -> None:
        stride = self.threads * BLOCK
        want = self.next_fresh + -(-fresh // stride) * stride
        if want > self.size:
            extra = -(-(want - self.size) // stride) * stride
            self.append(self.path, self.size, extra, tag=self.tag, phones=self.phones)
            self.size += extra

    def consumed(self, max_blocks: int) -> None:
        self.next_fresh += max_blocks * self.threads * BLOCK


# --------------------------------------------------------------------------- load generator


def run_load(
    loadgen: str,
    url: str,
    *,
    threads: int,
    connections: int,
    duration: float,
    timeout: float,
    pool: BodyPool,
    start: int,
    count: int,
    raw_out: Path,
) -> dict[str, Any]:
    if loadgen == "wrk":
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:g}s",
            f"--timeout={timeout:g}s",
            "--latency",
            "-s",
            str(BENCH / "webhook.lua"),
            url,
            "--",
            str(pool.path),
            str(start),
            str(count),
            str(threads),
            str(BLOCK),
        ]
    else:
        cmd = [
            sys.executable,
            str(BENCH / "pyload.py"),
            url,
            "--processes",
            str(threads),
            "--connections",
            str(connections),
            "--duration",
            str(duration),
            "--timeout",
            str(timeout),
            "--file",
            str(pool.path),
            "--start",
            str(start),
            "--count",
            str(count),
            "--block",
            str(BLOCK),
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    raw_out.write_text(" ".join(cmd) + "\n\n" + out.stdout + out.stderr)
    match = re.search(r"^WRK_JSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"load generator failed ({out.returncode}); see {raw_out}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


# --------------------------------------------------------------------------- gateway checks


def scrape(server: Server) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in server.get("/metrics").decode().splitlines():
        if line.startswith(
            ("wa_inbox_commit_batch_size", "wa_webhook_ack_seconds_", "wa_webhook_requests_total")
        ):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def count_messages(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'inbound'"))
    finally:
        await conn.close()


def settle(dsn: str, within: float = 30.0) -> int:
    """Wait until the gateway has committed its last batch: the row count stops moving."""
    deadline = time.monotonic() + within
    last = asyncio.run(count_messages(dsn))
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = asyncio.run(count_messages(dsn))
        if now == last:
            return now
        last = now
    return last


def parsed_count(server: Server) -> int:
    """Messages pywa's handler has received as parsed `types.Message` (bench/pywa_app.py)."""
    return int(json.loads(server.get("/bench/parsed"))["messages"])


def settle_parsed(server: Server, within: float = 30.0) -> int:
    """pywa parses after answering (a background task): wait until its count stops moving."""
    deadline = time.monotonic() + within
    last = parsed_count(server)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = parsed_count(server)
        if now == last:
            return now
        last = now
    return last


def batch_histogram(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    commits = delta("wa_inbox_commit_batch_size_count")
    buckets = {}
    for key in after:
        m = re.match(r'wa_inbox_commit_batch_size_bucket\{le="([^"]+)"\}', key)
        if m:
            buckets[m.group(1)] = int(delta(key))
    return {
        "commits": int(commits),
        "mean_batch": round(delta("wa_inbox_commit_batch_size_sum") / commits, 1) if commits else 0,
        "buckets_cumulative": buckets,
        "server_ack_mean_ms": round(
            1000
            * delta("wa_webhook_ack_seconds_sum")
            / max(delta("wa_webhook_ack_seconds_count"), 1),
            2,
        ),
    }


# --------------------------------------------------------------------------- profile

CATEGORIES = [
    ("asyncio/selector_events.py", "socket send/recv syscalls (asyncio transport)"),
    ("asyncio/transports.py", "socket send/recv syscalls (asyncio transport)"),
    ("selectors.py", "epoll wait"),
    ("gateway/signature.py", "HMAC-SHA256 signature check"),
    ("hmac.py", "HMAC-SHA256 signature check"),
    ("gateway/whatsapp/", "payload parse + pydantic validation"),
    ("pydantic", "payload parse + pydantic validation"),
    ("asyncpg", "Postgres I/O (asyncpg, queries of the group commit)"),
    ("store/", "Postgres I/O (asyncpg, queries of the group commit)"),
    ("gateway/ingest.py", "group-commit writer (queue, futures)"),
    ("prometheus_client", "Prometheus metrics"),
    ("structlog", "logging"),
    ("json/", "JSON encode of the response (aiohttp json_response)"),
    ("gateway/webhook.py", "webhook handler (orjson, bookkeeping)"),
    ("aiohttp", "aiohttp HTTP protocol (request parse, response build)"),
    ("asyncio", "asyncio event loop (tasks, callbacks)"),
]


def summarise_profile(raw: Path) -> list[tuple[str, float]]:
    """Attribute each py-spy sample to the component of its innermost recognised frame."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        label = "other"
        for frame in reversed(stack.split(";")):
            hit = next((name for pat, name in CATEGORIES if pat in frame), None)
            if hit:
                label = hit
                break
        counts[label] += int(n)
    return [(name, round(100 * c / total, 1)) for name, c in counts.most_common()] if total else []


# --------------------------------------------------------------------------- reporting


def socket_errors(r: dict[str, Any]) -> int:
    return sum(int(r["errors"][k]) for k in ("connect", "read", "write", "timeout"))


def ms(us: float) -> float:
    return round(us / 1000, 2)


def summarise(runs: list[dict[str, Any]], conns: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in conns:
        for target in ("bare", "gateway", "pywa"):
            rows = [r for r in runs if r["target"] == target and r["connections"] == c]
            if not rows:
                continue
            out[f"{target}-{c}"] = {
                "rps_median": round(statistics.median(r["rps"] for r in rows)),
                "rps_min": round(min(r["rps"] for r in rows)),
                "rps_max": round(max(r["rps"] for r in rows)),
                "p50_ms_median": ms(statistics.median(r["latency_us"]["p50"] for r in rows)),
                "p99_ms_median": ms(statistics.median(r["latency_us"]["p99"] for r in rows)),
                "p99_ms_max": ms(max(r["latency_us"]["p99"] for r in rows)),
                "non2xx": sum(r["lua"]["non2xx"] for r in rows),
                "socket_errors": sum(
                    r["errors"][k] for r in rows for k in ("connect", "read", "write", "timeout")
                ),
                "runs": len(rows),
            }
    return out


def markdown(
    info: dict[str, Any],
    args: argparse.Namespace,
    runs: list[dict[str, Any]],
    summary: dict[str, Any],
    profile: list[tuple[str, float]],
) -> str:
    with_pywa = any(r["target"] == "pywa" for r in runs)
    lines = [
        f"Run {info['date_utc']} (`{info['date']}`), commit {info['git_commit']}"
        + (" + uncommitted changes" if info["git_dirty"] else ""),
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['ram_gib']} GiB RAM, "
        f"{info['os']}, kernel {info['kernel']}; "
        f"Python {info['python']}, aiohttp {info['aiohttp']}, "
        f"asyncpg {info['asyncpg']}; {info['postgres']}; load generator: {info['loadgen']}"
        + (
            f"; pywa {info['pywa']} ({'sync' if args.pywa_sync else 'async'} client), "
            f"FastAPI {info['fastapi']}, uvicorn {info['uvicorn']} "
            f"(uvloop {info['uvloop']}, httptools {info['httptools']})"
            if with_pywa
            else ""
        ),
        f"Each cell: {args.runs} runs of {args.duration:g} s, `-t{args.threads}`, "
        f"`--timeout {args.timeout:g}s`; "
        "median requests/s (min-max), median p50, median p99 (worst p99).",
        "",
        "| connections | app | requests/s median (min-max) | p50 ms | p99 ms (worst) "
        "| non-2xx | socket errors | gateway/bare requests/s |"
        + (" gateway/pywa requests/s |" if with_pywa else ""),
        "|---:|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if with_pywa else ""),
    ]
    for c in args.connections:
        bare, gw, pw = (summary.get(f"{t}-{c}") for t in ("bare", "gateway", "pywa"))
        for name, s in (("bare aiohttp", bare), ("gateway", gw), ("pywa + FastAPI + uvicorn", pw)):
            if s is None:
                continue
            ratio = vs_pywa = ""
            if name == "gateway" and bare:
                ratio = f"**{s['rps_median'] / bare['rps_median']:.2f}**"
            if name == "gateway" and pw:
                vs_pywa = f"**{s['rps_median'] / pw['rps_median']:.2f}**"
            lines.append(
                f"| {c} | {name} | {s['rps_median']:,} ({s['rps_min']:,}-{s['rps_max']:,}) | "
                f"{s['p50_ms_median']} | {s['p99_ms_median']} ({s['p99_ms_max']}) | "
                f"{s['non2xx']} | "
                f"{s['socket_errors']} | {ratio} |" + (f" {vs_pywa} |" if with_pywa else "")
            )
    lines += [
        "",
        "Per run. CPU is in cores busy over the run (of " + str(info["nproc"]) + "): the server "
        "process / all postgres processes / the load generator / the rest (kernel softirqs of "
        "loopback TCP, anything else running) = whole machine.",
        "",
        "| run | connections | app | requests/s | p50 ms | p99 ms | 2xx "
        "| stored in Postgres (gateway) / parsed (pywa) "
        "| mean commit batch | commits/s | CPU server + pg + loadgen + rest = machine |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        cpu = r["cpu_cores"]
        stored = batch = commits = ""
        if r["target"] == "gateway":
            stored = f"{r['stored_delta']:,}"
            batch = str(r["metrics"]["mean_batch"])
            commits = f"{r['metrics']['commits'] / (r['duration_us'] / 1e6):.0f}"
        elif r["target"] == "pywa":
            stored = f"{r['parsed_delta']:,}"
        lines.append(
            f"| {r['run']} | {r['connections']} | {r['target']} | {r['rps']:,.0f} | "
            f"{ms(r['latency_us']['p50'])} | {ms(r['latency_us']['p99'])} | {r['lua']['ok']:,} | "
            f"{stored} | {batch} | {commits} | "
            f"{cpu['server']} + {cpu['postgres']} + {cpu['loadgen']} + {cpu['other']} "
            f"= {cpu['machine']} |"
        )
    checks = [r for r in runs if r["target"] == "gateway"]
    acked = sum(r["lua"]["stored"] for r in checks)
    stored = sum(r["stored_delta"] for r in checks)
    ok = all(r["check_ok"] for r in checks)
    lines += [
        "",
        f"Store-before-acknowledge check: {'PASS' if ok else 'FAIL'}: {acked:,} requests answered "
        f"2xx as stored, {stored:,} new messages in Postgres (the difference, "
        f"{stored - acked:,}, were in flight when the load generator stopped: "
        "stored, never answered); "
        f"duplicates answered: {sum(r['lua']['dup'] for r in checks)}, "
        f"body reuse (wraps): {sum(r['lua']['wraps'] for r in checks)}.",
    ]
    pywa_runs = [r for r in runs if r["target"] == "pywa"]
    if pywa_runs:
        answered = sum(r["lua"]["ok"] for r in pywa_runs)
        parsed = sum(r["parsed_delta"] for r in pywa_runs)
        lines += [
            "",
            f"pywa parse check: {'PASS' if all(r['check_ok'] for r in pywa_runs) else 'FAIL'}: "
            f"{answered:,} requests answered 2xx after pywa's signature check, {parsed:,} "
            "updates reached the message handler as a parsed `types.Message` (pywa parses "
            "after answering; the difference were in flight when the load generator stopped); "
            f"non-2xx: {sum(r['lua']['non2xx'] for r in pywa_runs)}, "
            f"body reuse (wraps): {sum(r['lua']['wraps'] for r in pywa_runs)}.",
        ]
    if profile:
        lines += [
            "",
            f"py-spy profile of the gateway process, one extra {args.profile_seconds:g} s run "
            f"at {args.connections[0]} connections (share of samples by innermost component):",
            "",
        ]
        lines += [f"- {pct}% {name}" for name, pct in profile]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per (app, connections)")
    parser.add_argument(
        "--connections", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000]
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--timeout", type=float, default=10.0, help="wrk request timeout, seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per app")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of rest between runs")
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="admin DSN of the Postgres server to create the bench database on",
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="py-spy an extra gateway run (skipped if py-spy is missing)",
    )
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument(
        "--pywa",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the pywa + FastAPI + uvicorn app (bench/pywa_app.py) beside the other two",
    )
    parser.add_argument(
        "--pywa-sync",
        action="store_true",
        help="pywa's sync client (handlers in a thread pool) instead of pywa_async",
    )
    args = parser.parse_args()
    if args.pywa and not all(
        importlib.util.find_spec(m) for m in ("pywa", "pywa_async", "fastapi", "uvicorn")
    ):
        parser.error(
            "pywa, fastapi or uvicorn is not installed: `pip install -e '.[bench]'`, "
            "or leave the pywa app out with --no-pywa"
        )

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 65536)) if hard != resource.RLIM_INFINITY else max(soft, 65536)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    need_fds = max(args.connections) + 100
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need_fds:
        print(f"warning: open-files limit below {need_fds}; raise `ulimit -n`", file=sys.stderr)

    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    if loadgen == "python":
        print(
            "warning: not using wrk; using the Python load generator bench/pyload.py, which "
            "competes harder with the servers for CPU (numbers are not comparable to wrk's)",
            file=sys.stderr,
        )

    info = machine_info()
    info["loadgen"] = (
        (_run_text(["wrk", "--version"]).splitlines() or ["wrk"])[0].split(" Copyright")[0]
        if loadgen == "wrk"
        else "bench/pyload.py (aiohttp client)"
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.results / stamp
    (out_dir / "raw").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wa-bench-"))
    pool = BodyPool(tmp / "bodies.txt", args.threads)
    pywa_pool = BodyPool(tmp / "bodies-bsuid.txt", args.threads, bsuid=True)

    db_name = f"bench_{random.getrandbits(40):010x}"
    admin = args.pg
    dsn = admin.rsplit("/", 1)[0] + "/" + db_name

    async def create_db() -> tuple[str, str, str]:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{db_name}"')
            version = await conn.fetchval("SHOW server_version")
            sync = await conn.fetchval("SHOW synchronous_commit")
            fsync = await conn.fetchval("SHOW fsync")
        finally:
            await conn.close()
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return version, sync, fsync

    async def drop_db() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        finally:
            await conn.close()

    servers: list[Server] = []
    runs: list[dict[str, Any]] = []
    profile: list[tuple[str, float]] = []
    started = time.monotonic()
    try:
        version, sync, fsync = asyncio.run(create_db())
        info["postgres"] = (
            f"PostgreSQL {version} on 127.0.0.1 (synchronous_commit={sync}, fsync={fsync})"
        )
        print(f"database {db_name}; results in {out_dir}", flush=True)
        pool.ensure(60_000)
        bare = start_server("bare", [str(BENCH / "bare_app.py")], out_dir)
        servers.append(bare)
        gateway = start_server(
            "gateway",
            [str(BENCH / "gateway_app.py"), "--database-url", dsn, "--secret", SECRET],
            out_dir,
        )
        servers.append(gateway)
        pywa: Server | None = None
        if args.pywa:
            pywa_pool.ensure(60_000)
            pywa = start_server(
                "pywa",
                [str(BENCH / "pywa_app.py"), "--secret", SECRET]
                + (["--sync"] if args.pywa_sync else []),
                out_dir,
            )
            servers.append(pywa)
        targets = [s for s in (bare, gateway, pywa) if s is not None]
        # First guesses of each fresh-body server's rate, raised to what the runs measure.
        rates = {"gateway": 5_000.0, "pywa": 5_000.0}

        def one(server: Server, conns: int, seconds: float, label: str) -> dict[str, Any]:
            is_gw = server is gateway
            is_pywa = server is pywa
            body_pool = pywa_pool if is_pywa else pool
            if is_gw or is_pywa:
                body_pool.ensure(int(max(rates[server.name], 1000) * seconds * 2.5) + conns * 2)
                start, count = body_pool.next_fresh, body_pool.size - body_pool.next_fresh
            else:
                start, count = 0, pool.size
            if is_gw:
                before_rows = asyncio.run(count_messages(dsn))
                before_metrics = scrape(server)
            if is_pywa:
                before_parsed = parsed_count(server)
            idle_before = wait_quiet()
            cpu0 = CpuSample.take(server.proc.pid)
            result = run_load(
                loadgen,
                server.url,
                threads=args.threads,
                connections=conns,
                duration=seconds,
                timeout=args.timeout,
                pool=body_pool,
                start=start,
                count=count,
                raw_out=out_dir / "raw" / f"{label}.txt",
            )
            result["cpu_cores"] = CpuSample.take(server.proc.pid).cores_since(cpu0)
            result["cpu_cores"]["busy_before"] = idle_before
            if is_gw:
                pool.consumed(result["lua"]["max_blocks"])
                after_rows = settle(dsn)
                result["metrics"] = batch_histogram(before_metrics, scrape(server))
                delta = after_rows - before_rows
                lua = result["lua"]
                result["stored_delta"] = delta
                # Every 2xx "stored" answer must be a row; more rows were in flight at the end.
                result["check_ok"] = (
                    lua["stored"] <= delta <= lua["sent"]
                    and lua["dup"] == 0
                    and lua["wraps"] == 0
                    and lua["non2xx"] == 0
                    and lua["ok"] == lua["stored"]
                )
                rates["gateway"] = max(rates["gateway"], result["rps"])
            if is_pywa:
                pywa_pool.consumed(result["lua"]["max_blocks"])
                parsed = settle_parsed(server) - before_parsed
                lua = result["lua"]
                result["parsed_delta"] = parsed
                # pywa answers before it parses: every 2xx must still reach the handler as a
                # parsed Message; more may, the requests in flight at the end. A reused body
                # would be skipped as a duplicate, unparsed, and flatter pywa: none may be.
                result["check_ok"] = (
                    lua["ok"] <= parsed <= lua["sent"] and lua["wraps"] == 0 and lua["non2xx"] == 0
                )
                rates["pywa"] = max(rates["pywa"], result["rps"])
            return result

        print(f"warm-up {args.warmup:g} s each ...", flush=True)
        for server in targets:
            one(server, args.connections[0], args.warmup, f"warmup-{server.name}")
        for run in range(1, args.runs + 1):
            for conns in args.connections:
                for server in targets:
                    time.sleep(args.pause)
                    label = f"{server.name}-c{conns}-run{run}"
                    r = one(server, conns, args.duration, label)
                    r.update(target=server.name, connections=conns, run=run)
                    runs.append(r)
                    extra = ""
                    if server is gateway:
                        extra = (
                            f"  stored {r['stored_delta']} / 2xx {r['lua']['ok']}  "
                            f"batch {r['metrics']['mean_batch']}  check "
                            f"{'ok' if r['check_ok'] else 'FAILED'}"
                        )
                    elif server is pywa:
                        extra = (
                            f"  parsed {r['parsed_delta']} / 2xx {r['lua']['ok']}  check "
                            f"{'ok' if r['check_ok'] else 'FAILED'}"
                        )
                    print(
                        f"{label:22} {r['rps']:9.0f} req/s  "
                        f"p50 {ms(r['latency_us']['p50']):8.2f} ms  "
                        f"p99 {ms(r['latency_us']['p99']):8.2f} ms  non-2xx {r['lua']['non2xx']}  "
                        f"errors {socket_errors(r)}"
                        f"  cpu {r['cpu_cores']}{extra}",
                        flush=True,
                    )

        pyspy = shutil.which("py-spy") or (
            str(Path(sys.executable).with_name("py-spy"))
            if Path(sys.executable).with_name("py-spy").exists()
            else None
        )
        if args.profile and pyspy:
            print("profiling the gateway with py-spy ...", flush=True)
            raw = out_dir / "gateway-profile.raw"
            spy_cmd = [
                pyspy,
                "record",
                "--pid",
                str(gateway.proc.pid),
                "--duration",
                str(int(args.profile_seconds)),
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(raw),
            ]

            def spy_later() -> None:
                time.sleep(1.0)  # let the load reach its steady state first
                subprocess.run(
                    spy_cmd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=args.profile_seconds + 60,
                )

            time.sleep(args.pause)
            spy = threading.Thread(target=spy_later)
            spy.start()
            one(gateway, args.connections[0], args.profile_seconds + 2, "gateway-profile")
            spy.join()
            if raw.exists():
                profile = summarise_profile(raw)
        elif args.profile:
            print("py-spy not found: no profile", file=sys.stderr)
    finally:
        for server in servers:
            server.stop()
        with contextlib.suppress(Exception):
            asyncio.run(drop_db())
        shutil.rmtree(tmp, ignore_errors=True)

    summary = summarise(runs, args.connections)
    md = markdown(info, args, runs, summary, profile)
    (out_dir / "summary.md").write_text(md)
    (out_dir / "results.json").write_text(
        json.dumps(
            {
                "machine": info,
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "summary": summary,
                "runs": runs,
                "profile": profile,
            },
            indent=2,
        )
    )
    latest = args.results / "latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(stamp)
    print(f"\n---- paste into BENCHMARKS.md ({time.monotonic() - started:.0f} s) ----\n")
    print(md)
    print(f"results: {out_dir}")
    return 0 if all(r["check_ok"] for r in runs if r["target"] in ("gateway", "pywa")) else 1


if __name__ == "__main__":
    sys.exit(main())
