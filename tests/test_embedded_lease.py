"""The embedded servers under one DATA_DIR: one owner, borrowers that never stop them,
a clean takeover when the owner is gone, and a restart of a server that died."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from store.embedded import EmbeddedPostgres, EmbeddedRedis
from store.embedded_lease import STATE_FILE, EmbeddedLease, read_state

CLI = Path(sys.executable).with_name("wa-support")


class Holder:
    """A `python -m tests.lease_holder` process: it holds the servers as `serve` does."""

    def __init__(self, data_dir: Path, role: str = "serve") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.lease_holder", str(data_dir), role],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the holder exited before it held the servers"
        self.got = json.loads(line)

    def next_line(self, within: float = 60) -> str:
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), True)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line:
                return line.strip()
            time.sleep(0.1)
        raise AssertionError("no line from the holder")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for holder in reversed(made):
        holder.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    # Whatever a test killed, nothing it started outlives it.
    EmbeddedRedis(path).stop()
    EmbeddedPostgres(path).stop()


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _postgres_answers(url: str) -> bool:
    import asyncio

    import asyncpg

    async def ping() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            return bool(await conn.fetchval("SELECT 1"))
        finally:
            await conn.close()

    return asyncio.run(ping())


def _until(check: object, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.2)


def _clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", APP_ENV="development")
    return env


def test_db_seed_beside_serve_uses_its_servers_and_leaves_them_running(
    data_dir: Path, holders: list[Holder]
) -> None:
    serve = Holder(data_dir)
    holders.append(serve)
    assert serve.got["owner"] is True
    seeded = subprocess.run(
        [str(CLI), "db", "seed"], env=_clean_env(data_dir), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded" in seeded.stdout
    # The serve's Redis and Postgres still answer, and it still owns them.
    assert _redis_answers(serve.got["redis_url"])
    assert _postgres_answers(serve.got["database_url"])
    state = read_state(data_dir)
    assert state is not None and state.pid == serve.proc.pid


def test_the_next_serve_takes_over_from_a_killed_owner_and_its_stale_files(
    data_dir: Path, holders: list[Holder]
) -> None:
    first = Holder(data_dir)
    holders.append(first)
    first.proc.kill()  # SIGKILL: no cleanup at all, state file and servers left behind
    first.proc.wait()
    assert read_state(data_dir) is not None and read_state(data_dir).pid == first.proc.pid  # type: ignore[union-attr]

    second = Holder(data_dir)
    holders.append(second)
    assert second.got["owner"] is True
    # The same addresses: borrowers and actors that knew the old ones carry on.
    assert second.got == first.got
    assert _redis_answers(second.got["redis_url"])
    assert _postgres_answers(second.got["database_url"])
    state = read_state(data_dir)
    assert state is not None and state.pid == second.proc.pid

    second.stop()
    # Stopped by the new owner: nothing runs on the data directory any more.
    assert not (data_dir / STATE_FILE).exists()
    assert not _redis_answers(second.got["redis_url"])
    assert not EmbeddedPostgres(data_dir).alive()


def test_a_borrowing_serve_takes_over_when_the_owner_stops(
    data_dir: Path, holders: list[Holder]
) -> None:
    owner = Holder(data_dir)
    holders.append(owner)
    borrower = Holder(data_dir)
    holders.append(borrower)
    assert borrower.got["owner"] is False
    assert borrower.got == {**owner.got, "owner": False}

    owner.stop()
    assert borrower.next_line() == "took over the embedded servers"
    _until(lambda: _redis_answers(borrower.got["redis_url"]))
    assert _postgres_answers(borrower.got["database_url"])
    state = read_state(data_dir)
    assert state is not None and state.pid == borrower.proc.pid


def test_the_owner_restarts_an_embedded_server_that_died(
    data_dir: Path, holders: list[Holder]
) -> None:
    owner = Holder(data_dir)
    holders.append(owner)
    redis_pid = int((data_dir / "redis" / "redis.pid").read_text())
    os.kill(redis_pid, signal.SIGKILL)
    assert owner.next_line() == "restarted the embedded Redis"
    assert _redis_answers(owner.got["redis_url"])

    pid_line = (data_dir / "pgdata" / "postmaster.pid").read_text().split()[0]
    postmaster = psutil.Process(int(pid_line))
    postmaster.kill()
    assert owner.next_line() == "restarted the embedded Postgres"
    _until(lambda: _postgres_answers(owner.got["database_url"]))


def test_a_second_command_waits_for_a_command_that_owns_the_servers(
    data_dir: Path, holders: list[Holder]
) -> None:
    # `db seed` owning them for a moment: a `migrate` started meanwhile waits, then owns.
    seed = Holder(data_dir, role="db seed")
    holders.append(seed)
    env = _clean_env(data_dir)
    migrate = subprocess.Popen(
        [str(CLI), "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert migrate.stderr is not None
    # It never borrows from a short-lived owner: it says so and waits.
    said = [migrate.stderr.readline()]
    while said[-1] and "waiting for" not in said[-1]:
        said.append(migrate.stderr.readline())
    assert "waiting for `db seed`" in said[-1], said
    assert migrate.poll() is None
    seed.stop()
    out, err = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, err
    assert "applied" in out
    assert not EmbeddedPostgres(data_dir).alive()  # migrate owned it, and stopped it


def test_a_command_needing_a_part_the_owner_does_not_run_is_told_what_to_set(
    data_dir: Path,
) -> None:
    # A serve on an external Postgres (DATABASE_URL set) owns only the embedded Redis.
    lease = EmbeddedLease(data_dir, postgres=False, redis=True, role="serve").open()
    try:
        seeded = subprocess.run(
            [str(CLI), "db", "seed"], env=_clean_env(data_dir), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert seeded.returncode == 2
        assert "runs no embedded Postgres; set DATABASE_URL" in seeded.stderr
        assert "Traceback" not in seeded.stderr
        assert _redis_answers(str(lease.redis_url))
    finally:
        lease.close()
