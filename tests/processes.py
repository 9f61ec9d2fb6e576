"""Stopping a `wa-support serve` child as Ctrl-C does, and finding what it left behind."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import psutil


async def interrupt(proc: subprocess.Popen[str]) -> None:
    """SIGINT, as Ctrl-C in a terminal, then wait for it to exit (killed after 60 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        await asyncio.to_thread(proc.wait, 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


async def left_running(children: list[psutil.Process], under: Path) -> list[list[str]]:
    """Which of `children`, or of the processes naming a path `under` (the embedded Postgres
    and Redis run in sessions of their own), still run: their command lines."""
    await asyncio.sleep(1.0)
    suspects = list(children)
    for p in psutil.process_iter(["cmdline"]):
        if any(str(under) in part for part in p.info["cmdline"] or []):
            suspects.append(p)
    return [
        p.cmdline()[:3] for p in suspects if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
