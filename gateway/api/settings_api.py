"""Operator settings (admin): read the effective values, replace one, revert one.

Writes go to `app_settings` and bump the Redis version counter (store.app_settings); the
actors compare that counter on their next message and reload, so there is no restart.
Flows and business hours are stored together under `flows`, in the flows engine's own
schema (actors/flows/schema.py), because that engine reads them as one file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from pydantic import BaseModel

from actors.conversation.flows.loader import FlowFileError, load_flows
from actors.conversation.flows.schema import BusinessHours, FlowsFile
from config import Settings
from config import operator_settings as shapes
from gateway.api.routing import Call, Endpoint
from store import app_settings


class SettingsOut(BaseModel):
    system_prompt: str
    models: shapes.Models
    faq: shapes.Faq
    flows: FlowsFile
    business_hours: BusinessHours | None
    window_template: shapes.WindowTemplate | None
    overridden: list[str]
    version: int


def _default_faq(path: Path) -> shapes.Faq:
    try:
        return shapes.Faq.model_validate(yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError, ValueError):
        return shapes.Faq()


def _file_flows(settings: Settings) -> FlowsFile:
    path = settings.flows_path
    try:
        return load_flows(path) if path is not None and path.exists() else FlowsFile()
    except (OSError, FlowFileError):
        return FlowsFile()


def _stored_flows(stored: dict[str, Any]) -> FlowsFile | None:
    raw = stored.get("flows")
    try:
        return FlowsFile.model_validate(raw) if isinstance(raw, dict) else None
    except ValueError:
        return None


def _window_template(settings: Settings) -> shapes.WindowTemplate | None:
    if not settings.window_template_name:
        return None
    return shapes.WindowTemplate(
        name=settings.window_template_name, language=settings.window_template_language
    )


async def _effective(call: Call, conn: asyncpg.Connection) -> SettingsOut:
    services = call.services
    settings = services.settings
    stored = await app_settings.load_all(conn)
    values: dict[str, Any] = {
        "system_prompt": settings.system_prompt,
        "models": shapes.Models(
            primary=settings.openrouter_primary_model,
            fallbacks=list(settings.openrouter_fallback_model),
        ),
        "faq": _default_faq(settings.faq_path),
        "window_template": _window_template(settings),
    }
    overridden: list[str] = []
    for key in shapes.SHAPES:
        parsed = shapes.parse_stored(key, stored.get(key)) if key in stored else None
        if parsed is not None:
            values[key] = parsed.value if isinstance(parsed, shapes.SystemPrompt) else parsed
            overridden.append(key)
    flows = _stored_flows(stored)
    if flows is not None:
        overridden.append("flows")
    flows = flows or _file_flows(settings)
    redis = services.redis
    version = await app_settings.version(redis, settings.redis_key_prefix) if redis else 0
    return SettingsOut(
        **values,
        flows=flows,
        business_hours=flows.business_hours,
        overridden=sorted(overridden),
        version=version,
    )


async def effective(call: Call) -> SettingsOut:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        return await _effective(call, conn)


async def _store(call: Call, key: str, value: Any | None) -> SettingsOut:
    """Write (or, with None, delete) one key; answer the new effective settings."""
    services = call.services
    redis = services.require_redis()
    prefix = services.settings.redis_key_prefix
    pool = await services.pools.get()
    async with pool.acquire() as conn:
        if value is None:
            await app_settings.delete(conn, redis, prefix, key)
        else:
            await app_settings.put(
                conn, redis, prefix, key, value, updated_by=str(call.user.user_id)
            )
        return await _effective(call, conn)


def _put(key: str) -> Callable[[Call], Awaitable[SettingsOut]]:
    async def put(call: Call) -> SettingsOut:
        return await _store(call, key, shapes.to_stored(key, call.body))

    return put


def _delete(key: str) -> Callable[[Call], Awaitable[SettingsOut]]:
    async def delete(call: Call) -> SettingsOut:
        return await _store(call, key, None)

    return delete


async def put_flows(call: Call) -> SettingsOut:
    body: FlowsFile = call.body
    return await _store(call, "flows", body.model_dump(mode="json"))


async def delete_flows(call: Call) -> SettingsOut:
    return await _store(call, "flows", None)


async def _current_flows(call: Call) -> FlowsFile:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        stored = await app_settings.load_all(conn)
    return _stored_flows(stored) or _file_flows(call.services.settings)


async def put_business_hours(call: Call) -> SettingsOut:
    body: BusinessHours = call.body
    flows = (await _current_flows(call)).model_copy(update={"business_hours": body})
    return await _store(call, "flows", flows.model_dump(mode="json"))


async def delete_business_hours(call: Call) -> SettingsOut:
    # Back to the flows file's hours, keeping the operator's flows.
    hours = _file_flows(call.services.settings).business_hours
    flows = (await _current_flows(call)).model_copy(update={"business_hours": hours})
    return await _store(call, "flows", flows.model_dump(mode="json"))


def _endpoints() -> list[Endpoint]:
    found = [
        Endpoint("GET", "/api/settings", effective, "Effective operator settings (admin)",
                 "settings", access="admin", response=SettingsOut),
        Endpoint("PUT", "/api/settings/flows", put_flows,
                 "Replace the flows (and their business hours) (admin)", "settings",
                 access="admin", body=FlowsFile, response=SettingsOut, errors=(422,)),
        Endpoint("DELETE", "/api/settings/flows", delete_flows,
                 "Revert the flows to the flows file (admin)", "settings", access="admin",
                 response=SettingsOut),
        Endpoint("PUT", "/api/settings/business_hours", put_business_hours,
                 "Replace the business hours the flows use (admin)", "settings",
                 access="admin", body=BusinessHours, response=SettingsOut, errors=(422,)),
        Endpoint("DELETE", "/api/settings/business_hours", delete_business_hours,
                 "Revert the business hours to the flows file's (admin)", "settings",
                 access="admin", response=SettingsOut),
    ]  # fmt: skip
    for key, shape in shapes.SHAPES.items():
        found.append(
            Endpoint("PUT", f"/api/settings/{key}", _put(key), f"Replace `{key}` (admin)",
                     "settings", access="admin", body=shape, response=SettingsOut,
                     errors=(422,))
        )  # fmt: skip
        found.append(
            Endpoint("DELETE", f"/api/settings/{key}", _delete(key),
                     f"Revert `{key}` to the environment's default (admin)", "settings",
                     access="admin", response=SettingsOut)
        )  # fmt: skip
    return found


ENDPOINTS = _endpoints()
