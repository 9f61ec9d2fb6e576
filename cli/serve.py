"""The composition root: embedded servers, migrations, Ray actors and the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import asyncpg
import structlog
from aiohttp import web

from actors import actor_set
from actors.actor_set import ActorSetMismatch
from actors.client import ActorClient
from actors.conversation.router import ShardRouter
from actors.delivery.providers import SANDBOX_TOKEN
from actors.runtime import init_ray, start_actors
from cli import banner
from cli.banner import SANDBOX_PATH
from cli.gateway_workers import GatewayWorkers, worker_env
from cli.loop import run as run_loop
from cli.port_guard import PortTaken, refuse_if_served
from cli.servers import Servers, servers_for
from cli.shutdown import StopSignals, drain
from config import Settings
from fakes.graph_api import GraphApiFake
from gateway.app import WEBHOOK_PATH, create_app
from gateway.state import SERVICES
from gateway.sweeper import InboxSweeper
from store.embedded_lease import SERVE, LeaseSupervisor
from store.migrate import migrate

log = structlog.get_logger(__name__)
HTTP_CLOSE_SECONDS = 3.0


async def run_migrations(settings: Settings, database_url: str | None = None) -> list[str]:
    if database_url is not None:
        return await _migrate(database_url)
    with servers_for(settings, "migrate", redis=False) as servers:
        return await _migrate(servers.database_url)


async def _migrate(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def serve(settings: Settings, *, workers: int = 1, attach: bool = False) -> int:
    """Run the service. `workers` > 1 starts that many gateway processes in all (this one
    included) on one port; `attach` is how such a worker runs: it finds the actors of the
    process that started it and leaves the sweeping to that one."""
    if workers > 1 and settings.uses_sandbox_delivery:
        print(
            "error: --workers needs a real provider: the sandbox records replies in one "
            "process. Set WHATSAPP_ACCESS_TOKEN (or MSG91_AUTH_KEY), or run one worker.",
            file=sys.stderr,
        )
        return 2
    if not attach:
        try:
            refuse_if_served(settings.host, settings.port)
        except PortTaken as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    actors: ActorClient | None = None
    with servers_for(settings, SERVE) as servers:
        supervisor = _supervise(servers)
        try:
            database_url, redis_url = servers.database_url, servers.redis_url
            asyncio.run(run_migrations(settings, database_url))
            init_ray(settings)
            base = f"http://{_client_host(settings.host)}:{settings.port}"
            sandbox_url = f"{base}{SANDBOX_PATH}" if settings.uses_sandbox_delivery else None
            # The actors read the resolved servers from their settings too (the delivery
            # actors publish live events and metrics to Redis), embedded ones included.
            settings = settings.model_copy(
                update={"database_url": database_url, "redis_url": redis_url}
            )
            try:
                actors = start_actors(
                    settings,
                    database_url=database_url,
                    redis_url=redis_url,
                    sandbox_base_url=sandbox_url,
                )
            except ActorSetMismatch as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            extra = None
            if workers > 1:
                env = worker_env(
                    host=settings.host, port=settings.port, ray_address=_ray_address(),
                    database_url=database_url, redis_url=redis_url,
                )  # fmt: skip
                extra = (workers - 1, env)
            run_loop(_run_gateway(settings, actors, servers, base, extra, sweep=not attach))
            return 0
        finally:
            if actors is not None and not settings.ray_address:
                with contextlib.suppress(Exception):
                    actors.kill()
            _shutdown_ray()
            if supervisor is not None:
                supervisor.stop()


def _supervise(servers: Servers) -> LeaseSupervisor | None:
    """Restarts an embedded server that died, or takes them over when their owner is gone."""
    if servers.lease is None:
        return None

    def report(line: str) -> None:
        log.warning("embedded_servers", action=line)
        print(f"embedded servers: {line}", flush=True)

    supervisor = LeaseSupervisor(servers.lease, report)
    supervisor.start()
    return supervisor


async def _run_gateway(
    settings: Settings,
    actors: ActorClient,
    servers: Servers,
    base: str,
    extra_workers: tuple[int, dict[str, str]] | None = None,
    *,
    sweep: bool = True,
) -> None:
    router = ShardRouter(
        actors.shards,
        max_batch=settings.batch_max_messages,
        max_delay=settings.batch_max_delay_ms / 1000,
        queue_limit=settings.router_queue_limit,
    )
    sandbox_url = f"{base}{SANDBOX_PATH}" if settings.uses_sandbox_delivery else None
    app = create_app(
        settings,
        router,
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        actors=actors,
        sandbox_base_url=sandbox_url,
    )
    if settings.uses_sandbox_delivery:
        sandbox = GraphApiFake(
            access_token=SANDBOX_TOKEN,
            status_webhook_url=f"{base}{WEBHOOK_PATH}",
            app_secret=settings.app_secret(),
            auto_statuses=("sent", "delivered"),
        )
        app.add_subapp(SANDBOX_PATH, sandbox.app)
    sweeper = InboxSweeper(
        app[SERVICES].pools,
        router,
        interval=settings.inbox_sweep_seconds,
        older_than=settings.inbox_replay_after_seconds,
        page=settings.replay_page_size,
    )

    # The drain has already waited for the work that matters; open requests get a moment.
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=HTTP_CLOSE_SECONDS
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=2048, reuse_port=True)
    await site.start()
    router.start()
    # Every actor answers before we say we are up; each shard replays its unprocessed inbox.
    await actors.ping()
    # `wa-support reshard` retires a set only when no gateway beats for it.
    beating = asyncio.create_task(actor_set.heartbeat(settings, actor_set.wanted(settings).version))
    workers = None
    if sweep:
        sweeper.start()
    if extra_workers is not None:
        workers = GatewayWorkers(*extra_workers, on_death=lambda: sweeper.sweep_once(0.0))
        workers.start()

    signals = StopSignals()
    signals.install()
    lines = banner.lines(settings, servers, base)
    if workers is not None:
        gateways = f"  {'gateways:':<11}{len(workers.pids) + 1} processes on port {settings.port}"
        lines.insert(-1, gateways)
    for line in lines:
        print(line, flush=True)
    await signals.stop.wait()
    print("shutting down: webhooks answer 503 while messages in hand finish...", flush=True)
    if workers is not None:
        # Each worker drains itself (503 to webhooks, messages in hand finished).
        await workers.stop(settings.shutdown_drain_seconds + HTTP_CLOSE_SECONDS + 2)
    await drain(settings, app, actors, router, sweeper, signals)
    beating.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await beating
    await runner.cleanup()


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _ray_address() -> str:
    import ray

    return str(ray.get_runtime_context().gcs_address)


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        with contextlib.suppress(Exception):
            ray.shutdown()
