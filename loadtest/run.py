"""One load-test run: start or reach the service, load it, settle, check and report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import report as reports
from loadtest.cpu import MachineCpu, TreeCpu
from loadtest.customers import Crowd, Target
from loadtest.memory import TreeMemory
from loadtest.options import LoadOptions
from loadtest.progress import show
from loadtest.replies import InProcessFeed, ReplyFeed, SandboxFeed
from loadtest.service import OwnService, own_service
from loadtest.stats import RunStats
from loadtest.verify import Verdict, verify


@dataclass(frozen=True)
class External:
    """A service someone else started, in sandbox mode."""

    base_url: str
    app_secret: str
    business_number: str
    database_url: str | None = None
    service_pid: int | None = None


async def run(
    options: LoadOptions,
    *,
    external: External | None = None,
    database_url: str | None = None,
    redis_url: str | None = None,
    report_dir: Path | None = None,
    progress: bool = True,
    fault: Callable[[OwnService], Coroutine[Any, Any, float]] | None = None,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """One run. `fault` (own service only) starts with the steady window and returns the
    monotonic time the fault ended; the report then says how soon replies flowed again.
    `log_dir` keeps the own service's log (`serve-<run>.log`) after the run."""
    run_id = secrets.token_hex(3)
    if external is not None:
        feed: ReplyFeed = SandboxFeed(external.base_url)
        target = Target(external.base_url, external.app_secret, external.business_number)
        result = await _load(
            options, run_id, target, feed, external.database_url, external.service_pid, progress
        )  # fmt: skip
    else:
        with tempfile.TemporaryDirectory(prefix="wa-loadtest-") as workdir:
            async with own_service(
                options, run=run_id, workdir=Path(workdir),
                database_url=database_url, redis_url=redis_url,
            ) as service:  # fmt: skip
                target = Target(service.base_url, service.app_secret, service.business_number)
                own = service
                result = await _load(
                    options, run_id, target, InProcessFeed(service.graph),
                    service.database_url, service.pid, progress,
                    (lambda: fault(own)) if fault is not None else None,
                )  # fmt: skip
            if log_dir is not None:
                await asyncio.to_thread(_keep_log, Path(workdir) / "serve.log", log_dir, run_id)
    if report_dir is not None:
        await asyncio.to_thread(_write_reports, report_dir, run_id, result)
    return result


def _keep_log(log: Path, log_dir: Path, run_id: str) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, log_dir / f"serve-{run_id}.log")
    print(f"loadtest: the service's log is kept in {log_dir / f'serve-{run_id}.log'}")


def _write_reports(report_dir: Path, run_id: str, result: dict[str, Any]) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / f"loadtest-{run_id}.json").write_text(json.dumps(result, indent=2))
    (report_dir / f"loadtest-{run_id}.md").write_text(reports.markdown(result))


async def _load(
    options: LoadOptions, run_id: str, target: Target, feed: ReplyFeed,
    database_url: str | None, pid: int | None, progress: bool,
    fault: Callable[[], Coroutine[Any, Any, float]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    stats = RunStats()
    crowd = Crowd(options, target, feed, stats, run_id)
    cpu = TreeCpu(pid) if pid is not None else None
    await feed.start()
    started = time.monotonic()
    steady_from = started + options.ramp_up
    stop_at = steady_from + options.duration

    def in_flight() -> int:
        return sum(len(c.pending) for c in crowd.customers)

    view = asyncio.create_task(show(stats, in_flight, started)) if progress else None
    loading = asyncio.create_task(crowd.run(stop_at))
    await asyncio.sleep(max(0.0, steady_from - time.monotonic()))
    memory = TreeMemory(pid) if pid is not None else None
    machine = MachineCpu()
    machine.start()
    if cpu is not None:
        cpu.start()
    if memory is not None:
        memory.start()
    injected = asyncio.create_task(fault()) if fault is not None else None
    acked_before = stats.acked
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    steady = time.monotonic() - steady_from
    cpu_seconds = cpu.seconds_since_start() if cpu is not None else None
    cpu_by_process = cpu.seconds_by_process() if cpu is not None else None
    beside = machine.seconds_since_start()
    processes = cpu.process_count() if cpu is not None else None
    steady_replies = stats.replies_between(steady_from, stop_at)
    steady_acked = stats.acked - acked_before
    await loading
    fault_ended = await injected if injected is not None else None
    # Replies still on their way: wait for them, bounded, before judging.
    settle_until = time.monotonic() + options.settle
    while in_flight() and time.monotonic() < settle_until:  # noqa: ASYNC110 - polls counters
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # a duplicate would come right behind its first copy
    await feed.stop()
    if memory is not None:
        await memory.stop()
    if view is not None:
        view.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await view
    verdict: Verdict | None = None
    if database_url is not None:
        verdict = await verify(database_url, crowd.acked, feed.seen)
    result = reports.build(
        options, stats, verdict, run=run_id, steady_seconds=steady,
        steady_replies=steady_replies, steady_acked=steady_acked,
        cpu_seconds=cpu_seconds, service_processes=processes,
        memory=memory.summary() if memory is not None else None,
        cpu_by_process=cpu_by_process, cpu_beside=beside,
    )  # fmt: skip
    if fault_ended is not None:
        # Recovered once everything written before the fault ended has been answered.
        backlog = [replied for sent, replied in stats.answered if sent < fault_ended]
        result["fault"] = {
            "recovery_seconds": round(max(0.0, max(backlog) - fault_ended), 2) if backlog else None,
        }
    return result
