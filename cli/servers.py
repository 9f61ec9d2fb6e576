"""The Postgres and Redis a command uses: DATABASE_URL and REDIS_URL when set, else the
embedded servers under DATA_DIR, owned by one process and shared (store.embedded_lease)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from config import Settings
from store.embedded_lease import EmbeddedLease, EmbeddedState


@dataclass
class Servers:
    database_url: str
    redis_url: str
    lease: EmbeddedLease | None

    def describe(self) -> list[tuple[str, str]]:
        """(part, how it runs) for the banner: embedded or external, and where."""
        lease = self.lease
        rows = []
        for part, url, embedded in (
            ("postgres", self.database_url, lease is not None and lease.postgres is not None),
            ("redis", self.redis_url, lease is not None and lease.redis is not None),
        ):
            if not embedded:
                kind = "external"
            elif lease is not None and lease.owner:
                kind = "embedded, started by this process"
            else:
                kind = f"embedded, shared with pid {_owner_pid(lease)}"
            rows.append((part, f"{kind}, {address(url)}"))
        return rows


def address(url: str) -> str:
    """Where a server listens, without the user or password a URL may carry."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix socket {parts.path}"
    if parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.hostname}{port}{parts.path}"
    socket_dir = dict(q.split("=", 1) for q in parts.query.split("&") if "=" in q).get("host")
    return f"unix socket in {socket_dir}{parts.path}" if socket_dir else parts.path or "?"


def _owner_pid(lease: EmbeddedLease | None) -> str:
    from store.embedded_lease import read_state

    state = read_state(lease.data_dir) if lease is not None else None
    return str(state.pid) if state else "?"


def _waiting(role: str) -> Callable[[EmbeddedState | None], None]:
    def tell(state: EmbeddedState | None) -> None:
        held = f"`{state.role}` (pid {state.pid})" if state else "another process"
        print(f"{role}: waiting for {held} to finish with the embedded servers...",
              file=sys.stderr, flush=True)  # fmt: skip

    return tell


@contextlib.contextmanager
def servers_for(settings: Settings, role: str, *, redis: bool = True) -> Iterator[Servers]:
    """The servers for the duration of a command; embedded ones this process owns are
    stopped at the end, borrowed ones are left to their owner. `redis=False`: only Postgres
    is needed (the redis_url is then empty unless REDIS_URL is set)."""
    need_pg, need_redis = not settings.database_url, redis and not settings.redis_url
    if not (need_pg or need_redis):
        yield Servers(str(settings.database_url), settings.redis_url or "", None)
        return
    lease = EmbeddedLease(
        settings.data_dir, postgres=need_pg, redis=need_redis, role=role,
        on_wait=_waiting(role),
    )  # fmt: skip
    lease.open()
    try:
        yield Servers(
            settings.database_url or str(lease.database_url),
            settings.redis_url or str(lease.redis_url),
            lease,
        )
    finally:
        lease.close()
