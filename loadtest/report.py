"""The run's report: one JSON document, and the same figures as a Markdown table."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from loadtest.options import LoadOptions
from loadtest.stats import RunStats, summary
from loadtest.verify import Verdict


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def build(
    options: LoadOptions,
    stats: RunStats,
    verdict: Verdict | None,
    *,
    run: str,
    steady_seconds: float,
    steady_replies: int,
    steady_acked: int,
    cpu_seconds: float | None,
    service_processes: int | None,
    memory: dict[str, Any] | None = None,
    cpu_by_process: dict[str, float] | None = None,
    cpu_beside: dict[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "run": run,
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "commit": _commit(),
        "options": asdict(options),
        "messages": {
            "webhooks_posted": stats.sent,
            "acknowledged": stats.acked,
            "duplicates_posted": stats.duplicates_posted,
            "replies_seen": stats.replies,
            "reply_timeouts": stats.timeouts,
        },
        "throughput": {
            "steady_seconds": round(steady_seconds, 1),
            "in_per_second": round(steady_acked / steady_seconds, 1) if steady_seconds else None,
            "out_per_second": round(steady_replies / steady_seconds, 1) if steady_seconds else None,
        },
        "ack_latency": summary(stats.ack_latency),
        "reply_latency": summary(stats.reply_latency),
        "errors": dict(stats.errors),
        "cpu": {
            "service_seconds": round(cpu_seconds, 2) if cpu_seconds is not None else None,
            "ms_per_reply": (
                round(cpu_seconds * 1000 / steady_replies, 2)
                if cpu_seconds is not None and steady_replies
                else None
            ),
            "service_processes": service_processes,
            # Where the CPU went, by process kind, in seconds over the steady window.
            "by_process": cpu_by_process,
            # What shares the machine, over the same window, and its CPU ms per reply.
            "beside": cpu_beside,
            "beside_ms_per_reply": (
                {k: round(v * 1000 / steady_replies, 2) for k, v in cpu_beside.items()}
                if cpu_beside and steady_replies
                else None
            ),
        },
        # Resident memory of the service's processes from the steady window to the end.
        "memory": memory,
        "correctness": (
            {
                "checked": verdict.checked,
                "unstored": verdict.unstored,
                "lost": verdict.lost,
                "duplicated": verdict.duplicated,
                "reordered": verdict.reordered,
                "ok": verdict.ok,
                "examples": dict(verdict.examples),
                "lost_states": dict(verdict.lost_states),
            }
            if verdict is not None
            else None
        ),
    }


def markdown(report: dict[str, Any]) -> str:
    o, m, t = report["options"], report["messages"], report["throughput"]
    ack, e2e, cpu = report["ack_latency"], report["reply_latency"], report["cpu"]
    c = report["correctness"] or {}
    mode = "closed loop" if o["rate"] is None else f"open loop at {o['rate']}/s"
    rows = [
        ("run", f"{report['run']} on {report['date']}, commit {report['commit']}"),
        ("load", f"{o['customers']} customers, {mode}, think {o['think_mean']} s, "
                 f"LLM {o['llm_latency']} s, {o['duplicate_share']:.0%} duplicated webhooks"),
        ("messages acknowledged", m["acknowledged"]),
        ("replies seen", m["replies_seen"]),
        ("throughput in / out", f"{t['in_per_second']} / {t['out_per_second']} per s "
                                f"over {t['steady_seconds']} s"),
        ("ack latency p50 / p95 / p99 / max", _latencies(ack)),
        ("reply latency p50 / p95 / p99 / max", _latencies(e2e)),
        ("errors", ", ".join(f"{k}: {v}" for k, v in report["errors"].items()) or "none"),
        ("service CPU per reply", f"{cpu['ms_per_reply']} ms" if cpu["ms_per_reply"] else "n/a"),
        ("beside it, CPU per reply", _beside(cpu.get("beside_ms_per_reply"))),
        ("service memory start / peak / end (growth)", _memory(report.get("memory"))),
        ("lost / duplicated / reordered", (
            f"{c['lost'] + c['unstored']} / {c['duplicated']} / {c['reordered']}"
            if c else "not checked (no database URL)"
        )),
    ]  # fmt: skip
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def _beside(per_reply: dict[str, float] | None) -> str:
    if not per_reply:
        return "n/a"
    return ", ".join(f"{name} {ms} ms" for name, ms in per_reply.items())


def _memory(mem: dict[str, Any] | None) -> str:
    if not mem or mem.get("peak_mb") is None:
        return "n/a"
    return (
        f"{mem['start_mb']} / {mem['peak_mb']} / {mem['end_mb']} MB "
        f"({mem['growth_mb']:+} MB)"
    )


def _latencies(s: dict[str, float | None]) -> str:
    return " / ".join(f"{s[k]} ms" if s[k] is not None else "-" for k in s)
