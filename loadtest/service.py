"""A service of the load tester's own: `wa-support serve` beside local Meta and OpenRouter fakes.

A bare `wa-support loadtest` on a new machine is then a complete demonstration: the fakes
run in this process (so their CPU is not the service's), the service runs as a child
process on the embedded Postgres and Redis unless DATABASE_URL and REDIS_URL are given,
and everything is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from redis.asyncio import Redis

from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from fakes.server import FakeServer
from loadtest.options import LoadOptions
from loadtest.webhooks import WEBHOOK_PATH
from store.embedded import EmbeddedServers, start_postgres, start_redis

GRAPH_TOKEN = "loadtest-graph-token"
OPENROUTER_KEY = "loadtest-openrouter-key"
APP_SECRET = "loadtest-app-secret"
BUSINESS_NUMBER = "100200300999"
START_TIMEOUT = 120.0


@dataclass
class OwnService:
    base_url: str
    database_url: str
    process: subprocess.Popen[bytes]
    graph: GraphApiFake
    llm: OpenRouterFake
    log_path: Path
    redis_url: str
    # Set when this run started the embedded Postgres: the chaos suite may stop it.
    pgdata: Path | None
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1  # gateway processes (`serve --workers`)
    app_secret: str = APP_SECRET
    business_number: str = BUSINESS_NUMBER
    restarts: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def gateway_workers(self) -> list[int]:
        """The pids of the extra gateway processes `serve --workers` started."""
        found = []
        for child in psutil.Process(self.process.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if "--attach" in child.cmdline():
                    found.append(int(child.pid))
        return found

    async def crash_and_restart(self, down_seconds: float = 1.0) -> None:
        """SIGKILL the gateway process, then start it again on the same address.

        Its Ray processes go with it, as a supervisor that kills the whole control group
        (systemd, a container runtime) would do; the new process starts afresh from what
        Postgres holds.
        """
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.wait)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.sleep(down_seconds)
        self.restarts += 1
        self.process = _start_serve(self.env, self.log_path.parent, self.log_path, self.workers)
        await _wait_listening(
            self.process, self.log_path, f"listening on {self.base_url}", skip=self.restarts
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _service_env(
    options: LoadOptions, *, run: str, port: int, data_dir: Path, urls: tuple[str, str],
    graph_url: str, llm_url: str,
) -> dict[str, str]:  # fmt: skip
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WHATSAPP_", "OPENROUTER_", "MSG91_", "RAY_ADDRESS"))
    }
    env.update(
        APP_ENV="development",
        HOST="127.0.0.1",
        PORT=str(port),
        DATA_DIR=str(data_dir),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
        DATABASE_URL=urls[0],
        REDIS_URL=urls[1],
        REDIS_KEY_PREFIX=f"lt{run}:",
        RAY_NAMESPACE=f"wa-loadtest-{run}",
        WHATSAPP_ACCESS_TOKEN=GRAPH_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=BUSINESS_NUMBER,
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_GRAPH_BASE_URL=graph_url,
        OPENROUTER_API_KEY=OPENROUTER_KEY,
        OPENROUTER_BASE_URL=llm_url,
        # Every message goes to the LLM: no scripted flows, no abuse limit in the way.
        FLOWS_PATH="none",
        ABUSE_MESSAGES_PER_WINDOW="0",
        MEDIA_DOWNLOAD="false",
        DELIVERY_MESSAGES_PER_SECOND="1000",
    )
    if not options.pair_rate:
        env["PAIR_INTERVAL_SECONDS"] = "0"
    return env


@contextlib.asynccontextmanager
async def own_service(
    options: LoadOptions, *, run: str, workdir: Path,
    database_url: str | None = None, redis_url: str | None = None,
) -> AsyncIterator[OwnService]:  # fmt: skip
    embedded = EmbeddedServers()
    graph = GraphApiFake(
        access_token=GRAPH_TOKEN,
        app_secret=APP_SECRET,
        auto_statuses=("sent", "delivered", "read") if options.statuses else (),
    )
    llm = OpenRouterFake(api_key=OPENROUTER_KEY)
    llm.set_latency(options.llm_latency)
    graph_server, llm_server = FakeServer(graph.app), FakeServer(llm.app)
    process: subprocess.Popen[bytes] | None = None
    service: OwnService | None = None
    try:
        data_dir = workdir / "data"
        db = database_url or str(await asyncio.to_thread(start_postgres, data_dir, embedded))
        rd = redis_url or str(await asyncio.to_thread(start_redis, data_dir, embedded))
        await graph_server.start()
        await llm_server.start()
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        graph.status_webhook_url = base + WEBHOOK_PATH
        env = _service_env(
            options, run=run, port=port, data_dir=data_dir, urls=(db, rd),
            graph_url=graph_server.url, llm_url=llm_server.url,
        )  # fmt: skip
        log_path = workdir / "serve.log"
        process = _start_serve(env, workdir, log_path, options.gateway_workers)
        await _wait_listening(process, log_path, f"listening on {base}")
        pgdata = data_dir / "pgdata" if database_url is None else None
        service = OwnService(
            base, db, process, graph, llm, log_path, rd, pgdata, env, options.gateway_workers
        )
        yield service
    finally:
        if service is not None:
            process = service.process  # a restart replaced it
        if process is not None:
            await asyncio.to_thread(_stop, process)
        await graph_server.stop()
        await llm_server.stop()
        if redis_url is not None:
            await _forget_keys(redis_url, f"lt{run}:")
        await asyncio.to_thread(embedded.stop)


async def _forget_keys(redis_url: str, prefix: str) -> None:
    # A shared Redis keeps nothing of ours: only this run's prefix, never FLUSHALL.
    client = Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            await client.delete(key)
    finally:
        await client.aclose()


def _start_serve(
    env: dict[str, str], workdir: Path, log_path: Path, workers: int = 1
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--workers", str(workers)],
            env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


async def _wait_listening(
    process: subprocess.Popen[bytes], log_path: Path, banner: str, *, skip: int = 0
) -> None:
    """Wait for the banner's (skip + 1)-th appearance: a restarted service appends to the log."""
    deadline = time.monotonic() + START_TIMEOUT
    while (text := _read(log_path)).count(banner) <= skip:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited at start:\n{text[-4000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start in {START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.2)


def _read(path: Path) -> str:
    # A small log read twice a second while the service starts: not worth a thread.
    return path.read_text(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Ctrl-C first, as a person stops it; then the whole session, Ray's processes included.
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
