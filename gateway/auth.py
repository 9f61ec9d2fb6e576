"""Who may call what: the authentication middleware and the session cookies.

Every /api/* route needs a valid access token (Bearer header or the session cookie),
except the auth entry points, the webhooks and the health check; without one the
answer is 401, before any route runs, so no data leaks even from an unknown path.
Dashboard pages without a session redirect to /login.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from config import Settings
from gateway.api.routing import PRINCIPAL, error_response
from gateway.auth_tokens import InvalidToken, Principal, read_access_token
from gateway.state import SERVICES

SESSION_COOKIE = "wa_session"
REFRESH_COOKIE = "wa_refresh"
REFRESH_COOKIE_PATH = "/api/auth"

PUBLIC_API = frozenset(
    {
        "/api/auth/login",
        "/api/auth/register",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/registration",
        "/api/health",
    }
)
PUBLIC_API_PREFIXES = ("/api/webhooks/",)
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_public_api(path: str) -> bool:
    return path in PUBLIC_API or path.startswith(PUBLIC_API_PREFIXES)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(request: web.Request, settings: Settings) -> tuple[Principal | None, bool]:
    """The caller, and whether it came by cookie (which needs the cross-site check)."""
    token = _bearer(request)
    by_cookie = False
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        by_cookie = token is not None
    if not token:
        return None, False
    try:
        return read_access_token(settings, token), by_cookie
    except InvalidToken:
        return None, False


def _cross_site(request: web.Request) -> bool:
    # SameSite=Strict already keeps the cookie off cross-site requests in current
    # browsers; checking Origin covers older ones. Same origin = same scheme://host.
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin == "null"
    return origin.rstrip("/") != f"{request.scheme}://{request.host}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    settings = request.app[SERVICES].settings
    if path.startswith("/api/") and not is_public_api(path):
        principal, by_cookie = authenticate(request, settings)
        if principal is None:
            return error_response(
                401, "authentication required", headers={"WWW-Authenticate": "Bearer"}
            )
        if by_cookie and request.method in _UNSAFE and _cross_site(request):
            return error_response(403, "cross-site request refused")
        request[PRINCIPAL] = principal
    elif path == "/dashboard" or path.startswith("/dashboard/"):
        principal, _ = authenticate(request, settings)
        if principal is None:
            raise web.HTTPFound(f"/login?next={path}")
        request[PRINCIPAL] = principal
    elif path.startswith("/api/auth/"):
        # Public auth routes still learn who calls, when someone does (logout, registration).
        principal, _ = authenticate(request, settings)
        if principal is not None:
            request[PRINCIPAL] = principal
    return await handler(request)


def set_session_cookies(
    response: web.StreamResponse, settings: Settings, access_token: str, refresh_token: str
) -> None:
    # HttpOnly: page scripts cannot read the tokens. SameSite=Strict: other sites' pages
    # cannot make the browser send them.
    common = {"httponly": True, "samesite": "Strict", "secure": settings.secure_cookies}
    response.set_cookie(
        SESSION_COOKIE,
        access_token,
        max_age=settings.jwt_access_ttl_seconds,
        path="/",
        **common,  # type: ignore[arg-type]
    )
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=settings.jwt_refresh_ttl_seconds,
        path=REFRESH_COOKIE_PATH,
        **common,  # type: ignore[arg-type]
    )


def clear_session_cookies(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
