"""The Graph API token goes with a media download only to Meta's media host or our Graph
base URL, never to a URL a response names elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from actors.delivery.providers.cloud_api import CloudApiProvider
from actors.delivery.providers.errors import SendError
from fakes.server import FakeServer

TOKEN = "graph-token-worth-stealing"


class Elsewhere:
    """A server that is not Meta's: it records every Authorization it is sent."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self._any)

    async def _any(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        return web.Response(body=b"stolen")


@pytest_asyncio.fixture
async def elsewhere() -> AsyncIterator[tuple[Elsewhere, str]]:
    server = Elsewhere()
    async with FakeServer(server.app) as running:
        yield server, running.url


async def _graph_pointing_at(url: str | None) -> FakeServer:
    """A Graph API whose media lookup names `url` as the download (None: its own)."""

    async def lookup(request: web.Request) -> web.Response:
        own = f"{request.url.origin()}/files/{request.match_info['media_id']}"
        return web.json_response({"url": url or own, "mime_type": "image/jpeg", "file_size": 6})

    async def download(request: web.Request) -> web.Response:
        return web.Response(body=b"photo!")

    app = web.Application()
    app.router.add_get("/v21.0/{media_id}", lookup)
    app.router.add_get("/files/{media_id}", download)
    server = FakeServer(app)
    await server.start()
    return server


async def test_a_media_url_on_another_host_gets_no_token(
    elsewhere: tuple[Elsewhere, str],
) -> None:
    other, other_url = elsewhere
    for url in (f"{other_url}/steal", "https://lookaside.fbsbx.com.evil.example/x"):
        graph = await _graph_pointing_at(url)
        provider = CloudApiProvider(base_url=graph.url, api_version="v21.0", access_token=TOKEN)
        try:
            with pytest.raises(SendError, match="unexpected host"):
                await provider.fetch_media("m1", 1024)
        finally:
            await provider.close()
            await graph.stop()
    assert other.authorizations == []


async def test_a_media_url_on_the_graph_base_url_is_downloaded() -> None:
    graph = await _graph_pointing_at(None)
    provider = CloudApiProvider(base_url=graph.url, api_version="v21.0", access_token=TOKEN)
    try:
        fetched = await provider.fetch_media("m1", 1024)
    finally:
        await provider.close()
        await graph.stop()
    assert fetched.content == b"photo!"
