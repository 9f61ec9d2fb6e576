"""The real gateway app (`gateway.app.create_app`) on a port, with a no-op dispatcher.

The dispatcher normally hands stored messages to the Ray conversation shards; here it
does nothing, so the benchmark measures the gateway's ingest path alone:
HTTP -> X-Hub-Signature-256 check -> JSON parse -> Postgres group commit -> 200.
The server is set up as `cli/serve.py` does it (one process, no access log).

    python bench/gateway_app.py --port 18082 --database-url postgresql://postgres@127.0.0.1/db
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from cli.loop import run as run_loop
from config import Settings
from config.logs import configure_logging
from gateway.app import create_app
from store.records import InboxItem

SECRET = "bench-secret"


class NoopDispatcher:
    """Stands in for actors.conversation.router.ShardRouter: stored items go nowhere."""

    def submit(self, items: Sequence[InboxItem]) -> None:
        return None


def time_commits() -> None:
    """Wrap InboxWriter._commit to print its wall time and batch size at exit (diagnosis only)."""
    import atexit
    import statistics
    import time

    from gateway.ingest import InboxWriter

    commit = InboxWriter._commit
    seen: list[tuple[float, float, int]] = []

    async def timed(self: InboxWriter, batch: list[Any]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        await commit(self, batch)
        seen.append((time.perf_counter() - wall, time.process_time() - cpu, len(batch)))

    def report() -> None:
        if seen:
            wall, cpu, size = (statistics.median(column) for column in zip(*seen, strict=True))
            print(
                f"commits {len(seen)}: median wall {wall * 1e3:.1f} ms, median process CPU "
                f"meanwhile {cpu * 1e3:.1f} ms, median batch {size:g}",
                flush=True,
            )

    InboxWriter._commit = timed  # type: ignore[method-assign]
    atexit.register(report)


async def serve(host: str, port: int, database_url: str, secret: str, backlog: int) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        whatsapp_app_secret=secret,  # type: ignore[arg-type]
        log_level="WARNING",
        host=host,
        port=port,
    )
    configure_logging(settings.log_level)
    app = create_app(settings, NoopDispatcher(), database_url=database_url)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=backlog, reuse_port=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"gateway listening on http://{host}:{port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18082)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--secret", default=SECRET)
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument(
        "--time-commits", action="store_true", help="print group-commit timings at exit"
    )
    args = parser.parse_args()
    if args.time_commits:
        time_commits()
    run_loop(serve(args.host, args.port, args.database_url, args.secret, args.backlog))


if __name__ == "__main__":
    main()
