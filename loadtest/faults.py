"""The faults the chaos suite injects into a service the load tester owns.

Every target is found among the descendants of *our* `serve` process, or is a server this
run started itself, so a fault never touches another run's processes or a shared server.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil
from redis.asyncio import Redis


def actor_workers(service_pid: int, actor_class: str) -> list[psutil.Process]:
    """The Ray worker processes of `actor_class` under our service (Ray titles them ray::Class)."""
    found = []
    for process in psutil.Process(service_pid).children(recursive=True):
        try:
            title = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if title.startswith(f"ray::{actor_class}"):
            found.append(process)
    return found


def sigkill_actor(service_pid: int, actor_class: str) -> int:
    """SIGKILL one worker of that actor class; return its pid. Ray restarts the actor."""
    workers = actor_workers(service_pid, actor_class)
    if not workers:
        raise RuntimeError(f"no ray::{actor_class} worker under pid {service_pid}")
    victim = workers[0]
    pid = int(victim.pid)
    os.kill(pid, signal.SIGKILL)
    return pid


async def flush_redis(redis_url: str) -> None:
    """FLUSHALL: only ever on a Redis this run started (the embedded one)."""
    client = Redis.from_url(redis_url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


def socket_dir_of(database_url: str) -> str:
    """pgserver's URI names its Unix socket directory in the `host` query parameter."""
    return parse_qs(urlsplit(database_url).query)["host"][0]


async def stop_postgres(pgdata: Path, database_url: str, seconds: float) -> None:
    """Stop our embedded Postgres for `seconds`, then start it again with the same options."""
    # Made at import time by pgserver, hence invisible to type checkers.
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs postgres as this user
    socket_dir = socket_dir_of(database_url)
    await asyncio.to_thread(pg_ctl, ["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user)
    await asyncio.sleep(seconds)
    args = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"]
    await asyncio.to_thread(pg_ctl, args, pgdata=pgdata, user=user, timeout=30)
