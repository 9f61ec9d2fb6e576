"""What the gateway's handlers share, kept on the aiohttp application."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from redis.asyncio import Redis

from config import Settings
from gateway.ingest import Ingest, PoolHolder
from store.records import InboxItem

if TYPE_CHECKING:
    from actors.client import ActorClient
    from gateway.events import LiveEvents


class Dispatcher(Protocol):
    """Takes stored inbox items to the shards (actors.conversation.router.ShardRouter)."""

    def submit(self, items: Sequence[InboxItem]) -> None: ...


@dataclass
class Services:
    settings: Settings
    pools: PoolHolder
    ingest: Ingest
    dispatcher: Dispatcher
    # Optional: a gateway without Redis still ingests webhooks (operators' API answers 503),
    # and one without actor handles cannot send operators' replies or test the LLM.
    redis: Redis | None = None
    actors: ActorClient | None = None
    events: LiveEvents | None = None
    # Where the sandbox Graph API listens, when delivery runs in sandbox mode.
    sandbox_base_url: str | None = None

    def require_redis(self) -> Redis:
        if self.redis is None:
            raise web.HTTPServiceUnavailable(reason="Redis is not configured for this gateway")
        return self.redis


SERVICES = web.AppKey("services", Services)
