"""Who owns the embedded servers under one DATA_DIR: one process starts and stops them,
every other one finds their addresses and uses them.

The owner holds an exclusive lock on DATA_DIR/embedded.lock for as long as it lives (the
kernel drops it when the process dies, however it dies) and writes the addresses to
DATA_DIR/embedded.json. Only a `serve` is borrowed from: any other command (db seed,
migrate, ...) that owns the servers is done in seconds, so a newcomer waits for its lock
instead of using servers about to stop. A `serve` that borrows takes over, on the same
addresses, as soon as the owner is gone; a state file or a server a killed owner left
behind is then overwritten or adopted.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import structlog
from filelock import FileLock, Timeout

from store.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServer

log = structlog.get_logger(__name__)

LOCK_FILE = "embedded.lock"
STATE_FILE = "embedded.json"
SERVE = "serve"
# How long a command waits for a short-lived owner (or a serve still starting its servers).
WAIT_SECONDS = 120.0


class EmbeddedUnavailable(RuntimeError):
    """The embedded servers cannot be had: held too long by another process, or lacking a part."""


@dataclass(frozen=True, slots=True)
class EmbeddedState:
    pid: int
    role: str
    database_url: str | None
    redis_url: str | None


class EmbeddedLease:
    """This process's hold on the embedded servers it needs: as their owner, or a borrower."""

    def __init__(
        self, data_dir: Path, *, postgres: bool, redis: bool, role: str,
        on_wait: Callable[[EmbeddedState | None], None] | None = None,
    ) -> None:  # fmt: skip
        self.data_dir = data_dir.resolve()
        self.role = role
        self.postgres = EmbeddedPostgres(self.data_dir) if postgres else None
        self.redis = EmbeddedRedis(self.data_dir) if redis else None
        self.owner = False
        self._on_wait = on_wait
        self._lock = FileLock(self.data_dir / LOCK_FILE, thread_local=False, fallback_to_soft=False)
        self._guard = threading.Lock()

    @property
    def database_url(self) -> str | None:
        return self.postgres.url if self.postgres else None

    @property
    def redis_url(self) -> str | None:
        return self.redis.url if self.redis else None

    @property
    def _servers(self) -> list[EmbeddedServer]:
        return [s for s in (self.postgres, self.redis) if s is not None]

    def open(self, wait: float = WAIT_SECONDS) -> EmbeddedLease:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        told = False
        while True:
            if self._try_own():
                return self
            state = read_state(self.data_dir)
            if state is not None and state.role == SERVE and _alive(state.pid):
                self._borrow(state)
                return self
            if time.monotonic() > deadline:
                held = f"pid {state.pid} ({state.role})" if state else "another process"
                raise EmbeddedUnavailable(
                    f"the embedded servers under {self.data_dir} are held by {held}; "
                    "wait for it to finish, or set DATABASE_URL and REDIS_URL"
                )
            if not told and self._on_wait is not None:
                self._on_wait(state)
                told = True
            time.sleep(0.2)

    def check(self) -> list[str]:
        """One round of supervision: the owner restarts a server that died; a borrowing
        `serve` takes over once the owner is gone. Returns what it did, for the log."""
        with self._guard:
            if not self.owner:
                if self.role != SERVE or not self._try_own():
                    return []
                return ["took over the embedded servers"]
            done = []
            for server in self._servers:
                if not server.alive():
                    name = _name(server)
                    log.warning("embedded_server_died", server=name, address=server.url)
                    server.start()
                    done.append(f"restarted the embedded {name}")
            return done

    def close(self) -> None:
        with self._guard:
            if not self.owner:
                return
            # Remove the addresses first: nobody borrows servers that are stopping.
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / STATE_FILE).unlink()
            for server in reversed(self._servers):
                with contextlib.suppress(Exception):
                    server.stop()
            self.owner = False
            self._lock.release(force=True)

    def _try_own(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        try:
            for server in self._servers:
                server.start()  # adopts a server a killed owner left running
        except BaseException:
            for server in self._servers:
                with contextlib.suppress(Exception):
                    server.stop()
            self._lock.release(force=True)
            raise
        self.owner = True
        _write_state(
            self.data_dir,
            EmbeddedState(os.getpid(), self.role, self.database_url, self.redis_url),
        )
        return True

    def _borrow(self, state: EmbeddedState) -> None:
        for server, url, part in (
            (self.postgres, state.database_url, "Postgres"),
            (self.redis, state.redis_url, "Redis"),
        ):
            if server is None:
                continue
            if url is None:
                raise EmbeddedUnavailable(
                    f"the serve with pid {state.pid} owns {self.data_dir} but runs no embedded "
                    f"{part}; set {'DATABASE_URL' if part == 'Postgres' else 'REDIS_URL'}"
                )
            server.url = url


def read_state(data_dir: Path) -> EmbeddedState | None:
    try:
        raw = json.loads((data_dir / STATE_FILE).read_text())
        return EmbeddedState(**raw)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _write_state(data_dir: Path, state: EmbeddedState) -> None:
    # Written whole and renamed, so a reader never sees half a file.
    tmp = data_dir / f".{STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(state)))
    tmp.replace(data_dir / STATE_FILE)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _name(server: EmbeddedServer) -> str:
    return "Postgres" if isinstance(server, EmbeddedPostgres) else "Redis"


class LeaseSupervisor:
    """Runs `lease.check()` every `interval` seconds on a thread of its own (starting a
    server blocks for seconds), reporting what it did through `report`."""

    def __init__(
        self, lease: EmbeddedLease, report: Callable[[str], None], *, interval: float = 1.0
    ) -> None:
        self._lease = lease
        self._report = report
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                for line in self._lease.check():
                    self._report(line)
            except Exception as exc:
                # A restart that failed (the old server's memory not yet freed): next round.
                log.warning("embedded_supervision_failed", error=repr(exc))
