"""Plumbing shared by the fakes: waiting on records, hanging requests, ids, args.

Nothing here mirrors a vendor; vendor behaviour lives in the per-service modules.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import string
from collections.abc import Callable
from typing import Any

from aiohttp import web

# Far longer than any client timeout the service would configure, so a "hang"
# is indistinguishable from a dead upstream until the client gives up.
HANG_SECONDS = 3600.0

_TRACE_ALPHABET = string.ascii_letters + string.digits


class Pulse:
    """Wake every waiter whenever a record is added, without busy polling."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        # Swap in a fresh Event so waiters re-check their predicate after each
        # change instead of spinning on an Event that stays set.
        event, self._event = self._event, asyncio.Event()
        event.set()

    # The fakes' public wait_for(count, timeout) is a plain call for test code,
    # hence a timeout argument rather than asking callers for a timeout scope.
    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._event.wait()


class Hangs:
    """Requests parked "forever" until released (reset or app shutdown)."""

    def __init__(self) -> None:
        self._release = asyncio.Event()

    async def hang(self) -> None:
        """Return after :data:`HANG_SECONDS` or on :meth:`release_all`.

        Cancellation (client hung up, server cancels the handler) propagates.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), HANG_SECONDS)

    def release_all(self) -> None:
        # Without this, app shutdown would wait out aiohttp's shutdown_timeout
        # for every parked handler.
        event, self._release = self._release, asyncio.Event()
        event.set()


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


async def read_json_object(request: web.Request) -> dict[str, Any] | None:
    """The request body as a JSON object, or ``None`` if it is anything else."""
    try:
        body = await request.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors.
        return None
    return body if isinstance(body, dict) else None


def random_token(length: int) -> str:
    return "".join(secrets.choice(_TRACE_ALPHABET) for _ in range(length))


def urlsafe_random(nbytes: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode().rstrip("=")


class ControlArgs:
    """Typed access to one action object posted to a ``/_fake/faults`` endpoint.

    Raises :class:`ValueError` with a readable message on a wrong type, which
    the control endpoints turn into HTTP 400.
    """

    def __init__(self, raw: object) -> None:
        if not isinstance(raw, dict):
            raise ValueError("each fault action must be a JSON object")
        self.raw: dict[str, Any] = raw

    def action(self) -> str:
        return self.string("action")

    def string(self, name: str) -> str:
        value = self.raw.get(name)
        if not isinstance(value, str):
            raise ValueError(f"{name!r} must be a string")
        return value

    def opt_string(self, name: str) -> str | None:
        return None if self.raw.get(name) is None else self.string(name)

    def integer(self, name: str, default: int | None = None) -> int:
        value = self.raw.get(name, default)
        # bool is an int subclass; "count": true is a client bug, not 1.
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name!r} must be an integer")
        return value

    def opt_integer(self, name: str) -> int | None:
        return None if self.raw.get(name) is None else self.integer(name)

    def number(self, name: str, default: float | None = None) -> float:
        value = self.raw.get(name, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{name!r} must be a number")
        return float(value)

    def opt_number(self, name: str) -> float | None:
        return None if self.raw.get(name) is None else self.number(name)


def action_list(body: object) -> list[ControlArgs]:
    """Accept one action object or a list of them."""
    items = body if isinstance(body, list) else [body]
    return [ControlArgs(item) for item in items]


def check_count(count: int) -> None:
    if count < 0:
        raise ValueError("count must be >= 0")


def check_delay(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
