"""The live view of a run: a rich table on a terminal, a line every few seconds elsewhere."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table

from loadtest.stats import RunStats, percentile


def _table(stats: RunStats, elapsed: float, in_flight: int) -> Table:
    table = Table(title=f"wa-support loadtest — {elapsed:.0f} s")
    for column in ("posted", "acked", "replies", "in flight", "ack p99", "reply p50", "reply p99",
                   "timeouts", "errors"):  # fmt: skip
        table.add_column(column, justify="right")
    table.add_row(*_cells(stats, in_flight))
    return table


def _cells(stats: RunStats, in_flight: int) -> list[str]:
    def ms(samples: list[float], q: float) -> str:
        value = percentile(samples[-5000:], q)
        return f"{value * 1000:.0f} ms" if value is not None else "-"

    return [
        str(stats.sent), str(stats.acked), str(stats.replies), str(in_flight),
        ms(stats.ack_latency, 0.99), ms(stats.reply_latency, 0.5), ms(stats.reply_latency, 0.99),
        str(stats.timeouts), str(sum(stats.errors.values())),
    ]  # fmt: skip


async def show(stats: RunStats, count: Callable[[], int], started: float) -> None:
    """Until cancelled. `count` tells how many messages are still owed a reply."""
    if sys.stdout.isatty():
        with Live(_table(stats, 0, 0), console=Console(), refresh_per_second=2) as live:
            while True:
                await asyncio.sleep(0.5)
                live.update(_table(stats, time.monotonic() - started, count()))
    while True:
        await asyncio.sleep(5)
        cells = _cells(stats, count())
        elapsed = time.monotonic() - started
        print(
            f"[{elapsed:5.0f} s] posted {cells[0]} acked {cells[1]} replies {cells[2]} "
            f"in flight {cells[3]} reply p99 {cells[6]}",
            flush=True,
        )
