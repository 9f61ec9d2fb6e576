"""Who may read /metrics and the detail of /api/health.

Both name internals an outsider should not see: queue depths, actor counts, model names,
the provider's number, which dependency is down. They are served to callers from
OBSERVABILITY_NETWORKS (the Prometheus scraper's network; loopback by default), to a
Bearer METRICS_TOKEN, and (the health detail) to a logged-in operator. The plain liveness
check GET /health, and the status word of /api/health, stay public for load balancers.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from gateway.proxies import address_in, networks
from gateway.state import SERVICES


def may_observe(request: web.Request) -> bool:
    settings = request.app[SERVICES].settings
    if address_in(request.remote, networks(settings.observability_networks)):
        return True
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    )
