"""What the gateway's handlers share, kept on the aiohttp application."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from config import Settings
from gateway.ingest import Ingest, PoolHolder
from store.records import InboxItem


class Dispatcher(Protocol):
    """Takes stored inbox items to the conversation shards (actors.router.ShardRouter)."""

    def submit(self, items: Sequence[InboxItem]) -> None: ...


@dataclass
class Services:
    settings: Settings
    pools: PoolHolder
    ingest: Ingest
    dispatcher: Dispatcher


SERVICES = web.AppKey("services", Services)
