"""Who the client is behind a TLS proxy: X-Forwarded-For, -Proto and -Host, from trusted peers only.

Meta delivers webhooks over HTTPS only, so production runs behind a TLS-terminating proxy
(nginx, a load balancer). The service then sees the proxy's address and plain HTTP. The
forwarded headers say who connected and how, but anyone can send them: they are believed
only from a peer in TRUSTED_PROXIES, and X-Forwarded-For is read from the right, skipping
trusted hops, so a client cannot put its own address in front (the approach of
aiohttp-remotes' XForwardedStrict, in a few lines).

What it drives: the per-IP login and registration throttles, the observability networks
(/metrics, the detail of /api/health), and the Origin check of cookie-authenticated writes,
which compares Origin with the scheme and host the browser used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks ("10.0.0.0/8", "::1"); a bad one raises ValueError."""
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs if spec.strip())


def address_in(address: str | None, within: tuple[Network, ...]) -> bool:
    if not address or not within:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in within)


def _values(request: web.Request, name: str) -> list[str]:
    # Several headers of one name count as one comma-separated list, in order.
    return [v.strip() for h in request.headers.getall(name, []) for v in h.split(",") if v.strip()]


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    trusted: tuple[Network, ...]

    def client(self, peer: str | None, forwarded_for: list[str]) -> str | None:
        """The first address, from the right, that is not one of our proxies."""
        client = peer
        for hop in reversed(forwarded_for):
            if not address_in(client, self.trusted):
                break
            try:
                client = str(ipaddress.ip_address(hop))
            except ValueError:
                break  # garbage from beyond our proxies: the last trusted hop is the client
        return client

    def middleware(self) -> Middleware:
        @web.middleware
        async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not address_in(request.remote, self.trusted):
                return await handler(request)
            changes: dict[str, str] = {}
            client = self.client(request.remote, _values(request, "X-Forwarded-For"))
            if client is not None and client != request.remote:
                changes["remote"] = client
            # The proxy nearest us sets these last: the rightmost value is its own.
            proto = _values(request, "X-Forwarded-Proto")
            if proto and proto[-1].lower() in ("http", "https"):
                changes["scheme"] = proto[-1].lower()
            host = _values(request, "X-Forwarded-Host")
            if host:
                changes["host"] = host[-1]
            return await handler(request.clone(**changes) if changes else request)  # type: ignore[arg-type]

        return forwarded
