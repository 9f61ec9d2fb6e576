"""`wa-support db seed` and `db reset`: demo data for the dashboard, and a guarded wipe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from cli.db import run
from cli.main import main
from config import Settings
from store.demo import DEMO


@pytest.fixture
def fresh_settings(settings: Settings, database_url: str) -> Iterator[Settings]:
    """Settings on a database of its own: a reset must not touch the session's data."""
    name = f"wa_test_demo_{uuid.uuid4().hex[:8]}"
    admin_dsn = database_url

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    yield settings.model_copy(
        update={"database_url": dsn, "redis_key_prefix": f"wa-test-demo-{uuid.uuid4().hex[:6]}:"}
    )
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _count(dsn: str, sql: str) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def test_seed_loads_demo_conversations_once_with_processed_inbound_and_status_history(
    fresh_settings: Settings,
) -> None:
    dsn = fresh_settings.database_url
    assert dsn is not None
    assert run(fresh_settings, "seed") == 0
    assert _count(dsn, "SELECT count(*) FROM conversations") == len(DEMO)
    # Already answered: the shards must never reply to demo messages.
    assert (
        _count(
            dsn,
            "SELECT count(*) FROM messages WHERE direction = 'inbound' AND processed_at IS NULL",
        )
        == 0
    )
    assert _count(dsn, "SELECT count(DISTINCT state) FROM conversations") == 3
    assert (
        _count(
            dsn,
            "SELECT min(n) FROM (SELECT count(*) AS n FROM message_statuses GROUP BY message_id) t",
        )
        >= 4
    )
    assert run(fresh_settings, "seed") == 0  # idempotent
    assert _count(dsn, "SELECT count(*) FROM conversations") == len(DEMO)


def test_reset_asks_first_and_does_nothing_without_the_word(
    fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = fresh_settings.database_url
    assert dsn is not None
    run(fresh_settings, "seed")
    questions: list[str] = []

    def answer_no(question: str) -> str:
        questions.append(question)
        return "no"

    assert run(fresh_settings, "reset", ask=answer_no) == 1
    assert "Type 'reset'" in questions[0]
    assert "@" not in questions[0]  # names the database, never credentials
    assert _count(dsn, "SELECT count(*) FROM conversations") == len(DEMO)

    assert run(fresh_settings, "reset", ask=lambda _: "reset") == 0
    assert _count(dsn, "SELECT count(*) FROM conversations") == 0
    assert _count(dsn, "SELECT count(*) FROM messages") == 0
    assert _count(dsn, "SELECT count(*) FROM schema_migrations") >= 3  # the schema stays


def test_reset_is_refused_in_production_even_with_yes(
    fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = fresh_settings.database_url
    assert dsn is not None
    run(fresh_settings, "seed")
    production = fresh_settings.model_copy(update={"app_env": "production"})
    assert run(production, "reset", assume_yes=True) == 2
    assert "refused in production" in capsys.readouterr().err
    assert _count(dsn, "SELECT count(*) FROM conversations") == len(DEMO)


def test_the_cli_wires_db_seed_and_reset(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fresh_settings.database_url is not None and fresh_settings.redis_url is not None
    monkeypatch.setenv("DATABASE_URL", fresh_settings.database_url)
    monkeypatch.setenv("REDIS_URL", fresh_settings.redis_url)
    monkeypatch.setenv("REDIS_KEY_PREFIX", fresh_settings.redis_key_prefix)
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    assert main(["db", "seed"]) == 0
    assert main(["db", "reset", "--yes"]) == 0
    assert _count(fresh_settings.database_url, "SELECT count(*) FROM conversations") == 0
    monkeypatch.setenv("APP_ENV", "production")
    assert main(["db", "reset", "--yes"]) == 2
