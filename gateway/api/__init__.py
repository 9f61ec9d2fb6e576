"""The operators' REST API: every endpoint declared once, routed, checked and documented."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import (
    account_events,
    actions,
    auth_routes,
    canned,
    conversations,
    diagnostics,
    health,
    live,
    observe,
    settings_api,
    webhook_health,
)
from gateway.api.openapi import build_spec
from gateway.api.routing import Call, Endpoint, register

SPEC_PATH = "/api/openapi.json"


def endpoints() -> list[Endpoint]:
    return [
        *auth_routes.ENDPOINTS,
        *conversations.ENDPOINTS,
        *actions.ENDPOINTS,
        *canned.ENDPOINTS,
        *settings_api.ENDPOINTS,
        *observe.ENDPOINTS,
        *account_events.ENDPOINTS,
        *live.ENDPOINTS,
        *diagnostics.ENDPOINTS,
        *health.ENDPOINTS,
        *webhook_health.ENDPOINTS,
    ]


def spec() -> dict[str, Any]:
    return build_spec(endpoints(), title="wa-support operator API", version="1")


def setup(app: web.Application) -> None:
    document = spec()

    async def openapi(_: Call) -> web.StreamResponse:
        return web.json_response(document)

    register(app, [*endpoints(), Endpoint("GET", SPEC_PATH, openapi, "This document", "docs")])
