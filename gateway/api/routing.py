"""Declared endpoints: one record per route drives routing, validation, access and the spec.

Each endpoint names its access level, its query and body models and its response model.
The same models validate requests and produce /api/openapi.json, so the documentation
cannot drift from what the server accepts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.auth_tokens import Principal
from gateway.state import SERVICES, Services

Access = Literal["public", "agent", "admin"]
PRINCIPAL = web.RequestKey("principal", Principal)
# Path ids are bigserial keys: anything outside 1..2^63-1 cannot exist.
_MAX_ID = 2**63 - 1
_PATH_PARAM = re.compile(r"{(\w+)}")

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An answer other than success, with a message safe to show."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ErrorBody(BaseModel):
    error: str
    detail: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, who calls, and the validated inputs."""

    request: web.Request
    principal: Principal | None
    query: Any
    body: Any
    ids: dict[str, int]

    @property
    def services(self) -> Services:
        return self.request.app[SERVICES]

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "only called on authenticated endpoints"
        return self.principal


Handler = Callable[[Call], Awaitable[BaseModel | web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    access: Access = "agent"
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    # Other answers with a body of their own (readiness answers 503 with the same report).
    other_responses: tuple[tuple[int, type[BaseModel]], ...] = ()
    # Non-JSON answers (the event stream) are documented by their media type only.
    media_type: str = "application/json"
    path_params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path_params", tuple(_PATH_PARAM.findall(self.path)))


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(model.model_dump(mode="json")),
        status=status,
        content_type="application/json",
    )


def error_response(
    status: int,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = ErrorBody(error=message, detail=detail).model_dump(exclude_none=True)
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    # Only where and what: pydantic's "input" could echo a password back.
    return [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]


def _has_nul(data: Any) -> bool:
    if isinstance(data, str):
        return "\x00" in data
    if isinstance(data, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_nul(v) for v in data)
    return False


def _parse(model: type[M], data: Any) -> M:
    # Postgres text cannot hold NUL; refuse it here rather than fail deep in a query.
    if _has_nul(data):
        raise _Invalid([{"loc": [], "msg": "text must not contain NUL characters",
                         "type": "nul_character"}])  # fmt: skip
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _Invalid(_validation_detail(exc)) from exc
    except Exception as exc:
        # A validator that raised something other than ValueError (re.error from a bad
        # regex, say) still means the input is invalid, not that the server failed.
        raise _Invalid([{"loc": [], "msg": str(exc)[:200], "type": type(exc).__name__}]) from exc


class _Invalid(Exception):
    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("invalid input")
        self.detail = detail


def _wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        principal = request.get(PRINCIPAL)
        if endpoint.access != "public":
            if principal is None:
                return error_response(401, "authentication required")
            if endpoint.access == "admin" and not principal.is_admin:
                return error_response(403, "this needs the admin role")
        ids: dict[str, int] = {}
        for name in endpoint.path_params:
            if not name.endswith("_id"):
                continue  # a string parameter, read by the handler
            raw = request.match_info.get(name, "")
            # isdigit() alone admits "²" and "١٢٣": only ASCII digits are an id.
            if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= _MAX_ID:
                return error_response(404, f"no such {name.removesuffix('_id')}")
            ids[name] = int(raw)
        try:
            query = _parse(endpoint.query, dict(request.query)) if endpoint.query else None
            body = None
            if endpoint.body is not None:
                raw_body = await request.read()
                try:
                    data = orjson.loads(raw_body) if raw_body else {}
                except orjson.JSONDecodeError:
                    return error_response(400, "the body is not valid JSON")
                body = _parse(endpoint.body, data)
        except _Invalid as exc:
            return error_response(422, "invalid input", exc.detail)
        call = Call(request=request, principal=principal, query=query, body=body, ids=ids)
        try:
            result = await endpoint.handler(call)
        except ApiError as exc:
            return error_response(exc.status, exc.message, headers=exc.headers)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result, endpoint.status)

    return handle


def register(app: web.Application, endpoints: list[Endpoint]) -> None:
    for endpoint in endpoints:
        app.router.add_route(endpoint.method, endpoint.path, _wrap(endpoint))
