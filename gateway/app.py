"""The aiohttp application: routes and lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis

from config import Settings
from gateway import api, msg91, webhook
from gateway import web as pages
from gateway.auth import auth_middleware
from gateway.draining import DRAINING, Draining
from gateway.events import Announcer, LiveEvents
from gateway.events_ingest import AnnouncingIngest
from gateway.ingest import Ingest, PoolHolder
from gateway.metrics_export import render
from gateway.observer_access import may_observe
from gateway.proxies import TrustedProxies, networks
from gateway.request_context import request_context
from gateway.retention import RetentionSweeper
from gateway.state import SERVICES, Dispatcher, Services
from gateway.unavailable import unavailable

if TYPE_CHECKING:
    from actors.client import ActorClient

WEBHOOK_PATH = "/api/webhooks/whatsapp-business"


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    if not may_observe(request):
        return web.json_response(
            {"error": "metrics are served to OBSERVABILITY_NETWORKS or with METRICS_TOKEN"},
            status=403,
        )
    body = await render(request.app[SERVICES])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    settings: Settings,
    dispatcher: Dispatcher,
    *,
    database_url: str,
    redis_url: str | None = None,
    actors: ActorClient | None = None,
    sandbox_base_url: str | None = None,
) -> web.Application:
    """The gateway. Without Redis it still ingests webhooks; without actor handles the
    operators' replies and LLM test answer 503 (the shards are reached via `dispatcher`)."""
    # aiohttp refuses bodies over client_max_size with 413 before we read them whole.
    # The proxy's forwarded headers come first: every later step sees the real client.
    proxies = TrustedProxies(networks(settings.trusted_proxies))
    app = web.Application(
        client_max_size=settings.webhook_max_body_bytes,
        middlewares=[proxies.middleware(), request_context, unavailable, auth_middleware],
    )
    pools = PoolHolder(database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    url = redis_url or settings.redis_url
    redis = Redis.from_url(url) if url else None
    announcer = Announcer(redis, settings.redis_key_prefix) if redis is not None else None
    ingest: Ingest
    if announcer is not None:
        ingest = AnnouncingIngest(
            pools, dispatcher.submit, announcer, writers=settings.inbox_writers
        )
    else:
        ingest = Ingest(pools, dispatcher.submit, writers=settings.inbox_writers)
    events = LiveEvents(redis, settings.redis_key_prefix) if redis is not None else None
    app[SERVICES] = Services(
        settings=settings,
        pools=pools,
        ingest=ingest,
        dispatcher=dispatcher,
        redis=redis,
        actors=actors,
        events=events,
        sandbox_base_url=sandbox_base_url,
    )

    app[DRAINING] = Draining()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    # A provider's webhook exists only when that provider has its own secret: an unmounted
    # route answers 404 and can be signed by nobody.
    if settings.cloud_api_webhook_enabled:
        app.router.add_get(WEBHOOK_PATH, webhook.verify)
        app.router.add_post(WEBHOOK_PATH, webhook.receive)
    if settings.msg91_webhook_enabled:
        app.router.add_post(msg91.PATH, msg91.receive)
    api.setup(app)
    pages.setup(app)

    retention = RetentionSweeper(pools, settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        ingest.start()
        retention.start()
        if announcer is not None:
            announcer.start()
        if events is not None:
            events.start()
        yield
        await retention.stop()
        await ingest.stop()
        if announcer is not None:
            await announcer.stop()
        await pools.close()
        if redis is not None:
            await redis.aclose()

    async def end_streams(app: web.Application) -> None:
        # on_shutdown runs before connections are closed: live streams end first.
        if events is not None:
            await events.stop()

    app.on_shutdown.append(end_streams)
    app.cleanup_ctx.append(lifecycle)
    return app
