"""The aiohttp application: routes and lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config import Settings
from gateway import webhook
from gateway.ingest import Ingest, PoolHolder
from gateway.state import SERVICES, Dispatcher, Services

WEBHOOK_PATH = "/api/webhooks/whatsapp-business"


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(settings: Settings, dispatcher: Dispatcher, *, database_url: str) -> web.Application:
    # aiohttp refuses bodies over client_max_size with 413 before we read them whole.
    app = web.Application(client_max_size=settings.webhook_max_body_bytes)
    pools = PoolHolder(database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    ingest = Ingest(pools, dispatcher.submit, writers=settings.inbox_writers)
    app[SERVICES] = Services(settings=settings, pools=pools, ingest=ingest, dispatcher=dispatcher)

    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get(WEBHOOK_PATH, webhook.verify)
    app.router.add_post(WEBHOOK_PATH, webhook.receive)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        ingest.start()
        yield
        await ingest.stop()
        await pools.close()

    app.cleanup_ctx.append(lifecycle)
    return app
