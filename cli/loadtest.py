"""`wa-support loadtest`: the command line of the load tester (package loadtest/)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from loadtest.options import LoadOptions

_DEFAULTS = LoadOptions()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--customers", type=int, default=_DEFAULTS.customers, help="simulated customers")
    a("--duration", type=float, default=_DEFAULTS.duration, help="seconds of load after ramp-up")
    a("--ramp-up", type=float, default=_DEFAULTS.ramp_up, help="seconds to start all customers")
    a(
        "--think",
        type=float,
        default=_DEFAULTS.think_mean,
        help="mean think time between a reply and the next message (exponential; 0 for none)",
    )
    a("--rate", type=float, help="open loop: messages per second in all (default: closed loop)")
    a(
        "--duplicates",
        type=float,
        default=_DEFAULTS.duplicate_share,
        help="share of webhooks delivered twice, as Meta's retries do (0..1)",
    )
    a("--no-statuses", action="store_true", help="no sent/delivered/read webhooks per reply")
    a(
        "--llm-latency",
        type=float,
        default=_DEFAULTS.llm_latency,
        help="seconds the OpenRouter fake takes per answer (own service only)",
    )
    a("--pair-rate", action="store_true", help="keep Meta's pair rate limit on (own service)")
    a("--reply-timeout", type=float, default=_DEFAULTS.reply_timeout)
    a(
        "--settle",
        type=float,
        default=_DEFAULTS.settle,
        help="seconds to wait for outstanding replies after the load",
    )
    a("--url", help="load a running service (sandbox mode) instead of starting one")
    a(
        "--app-secret",
        default=os.environ.get("WHATSAPP_APP_SECRET", "dev-app-secret"),
        help="the service's WHATSAPP_APP_SECRET, with --url",
    )
    a("--business-number", default="123456789", help="phone_number_id to write to, with --url")
    a(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="the service's database, to check replies against (with --url), or for its own "
        "service (default: an embedded Postgres)",
    )
    a("--redis-url", default=os.environ.get("REDIS_URL"), help="Redis for its own service")
    a("--service-pid", type=int, help="the running service's pid, to measure its CPU (--url)")
    a(
        "--report-dir",
        type=Path,
        default=Path("loadtest-reports"),
        help="where the JSON and Markdown reports go",
    )
    a("--no-progress", action="store_true", help="no live display")  # fmt: skip
    a("--logs", type=Path, default=None, help="keep the own service's log in this folder")


def run(args: argparse.Namespace) -> int:
    from loadtest.run import External
    from loadtest.run import run as run_load

    options = LoadOptions(
        customers=args.customers,
        duration=args.duration,
        ramp_up=args.ramp_up,
        think_mean=args.think,
        rate=args.rate,
        duplicate_share=args.duplicates,
        statuses=not args.no_statuses,
        llm_latency=args.llm_latency,
        reply_timeout=args.reply_timeout,
        settle=args.settle,
        pair_rate=args.pair_rate,
    )
    external = (
        External(args.url, args.app_secret, args.business_number, args.database_url,
                 args.service_pid)
        if args.url else None
    )  # fmt: skip
    report = asyncio.run(
        run_load(
            options,
            external=external,
            database_url=args.database_url,
            redis_url=args.redis_url,
            report_dir=args.report_dir,
            progress=not args.no_progress,
            log_dir=args.logs,
        )
    )
    from loadtest.report import markdown

    print(markdown(report))
    print(json.dumps(report["correctness"]), file=sys.stderr)
    correctness = report["correctness"]
    # Lost, duplicated or reordered replies fail the run; so does one we could not check.
    return 0 if correctness is not None and correctness["ok"] else 1


def add_chaos_arguments(parser: argparse.ArgumentParser) -> None:
    from loadtest.chaos import SCENARIOS

    keys = [s.key for s in SCENARIOS]
    parser.add_argument(
        "--scenario",
        action="append",
        choices=keys,
        help="run only this scenario (repeatable); default: all",
    )
    parser.add_argument("--short", action="store_true", help="the short version (as in CI)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="Postgres for the scenarios that do not own theirs",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument(
        "--report",
        type=Path,
        default=Path("loadtest-reports/chaos.md"),
        help="where the table goes (docs/reliability.md keeps the record, by hand)",
    )
    parser.add_argument("--progress", action="store_true", help="live display per scenario")
    parser.add_argument(
        "--logs", type=Path, default=None, help="keep each scenario's service log in this folder"
    )


def run_chaos(args: argparse.Namespace) -> int:
    from loadtest.chaos import run_all

    outcomes = asyncio.run(
        run_all(
            args.scenario,
            short=args.short,
            database_url=args.database_url,
            redis_url=args.redis_url,
            report=args.report,
            progress=args.progress,
            log_dir=args.logs,
        )
    )
    return 0 if all(o.ok for o in outcomes) else 1
