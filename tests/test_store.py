"""Migrations and the inbox's storage contracts, on real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from store import agent_actions, conversations, inbox
from store.db import create_pool
from store.migrate import load_migrations, migrate
from store.records import InboundMessage
from tests.support import BUSINESS_NUMBER, new_phone, new_wamid


@pytest_asyncio.fixture
async def empty_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    name = f"wa_test_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(urlunsplit(urlsplit(database_url)._replace(path=f"/{name}")))
    yield conn
    await conn.close()
    await admin.execute(f'DROP DATABASE "{name}"')
    await admin.close()


async def test_migrations_apply_in_order_and_a_second_run_is_a_no_op(
    empty_db: asyncpg.Connection,
) -> None:
    first = await migrate(empty_db)
    assert first == [m.name for m in load_migrations()]
    assert await migrate(empty_db) == []
    tables = {
        r["tablename"]
        for r in await empty_db.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    }
    assert {"conversations", "messages", "webhook_events", "schema_migrations"} <= tables


async def test_later_migrations_run_after_earlier_ones(
    empty_db: asyncpg.Connection, tmp_path: Path
) -> None:
    (tmp_path / "002_add_column.sql").write_text("ALTER TABLE things ADD COLUMN label text;")
    (tmp_path / "001_create.sql").write_text("CREATE TABLE things (id int);")
    assert await migrate(empty_db, tmp_path) == ["001_create.sql", "002_add_column.sql"]
    (tmp_path / "003_more.sql").write_text("INSERT INTO things VALUES (1, 'one');")
    assert await migrate(empty_db, tmp_path) == ["003_more.sql"]


def test_a_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "create_things.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"001_name\.sql"):
        load_migrations(tmp_path)


def _message(
    phone: str, text: str, *, wamid: str | None = None, minutes: int = 0
) -> InboundMessage:
    return InboundMessage(
        provider="whatsapp_cloud",
        provider_message_id=wamid or new_wamid(),
        business_number=BUSINESS_NUMBER,
        customer_phone=phone,
        type="text",
        text=text,
        payload={"text": {"body": text}},
        timestamp=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
        customer_name="Grace",
    )


async def test_a_batch_stores_new_messages_once_and_keeps_the_latest_customer_time(
    db: asyncpg.Pool,
) -> None:
    phone = new_phone()
    repeated = new_wamid()
    batch = [
        _message(phone, "first", wamid=repeated, minutes=1),
        _message(phone, "second", minutes=5),
        _message(phone, "first again", wamid=repeated, minutes=1),
    ]
    async with db.acquire() as conn, conn.transaction():
        items = await inbox.insert_inbound(conn, batch)
    assert [i.text for i in items] == ["first", "second"]
    assert items[0].message_id < items[1].message_id

    async with db.acquire() as conn, conn.transaction():
        assert await inbox.insert_inbound(conn, batch) == []
    row = await db.fetchrow(
        "SELECT customer_name, last_customer_message_at, state FROM conversations "
        "WHERE customer_phone = $1",
        phone,
    )
    assert row["customer_name"] == "Grace"
    assert row["last_customer_message_at"] == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert row["state"] == "bot"


async def test_a_customer_writing_to_a_closed_conversation_reopens_it(db: asyncpg.Pool) -> None:
    phone = new_phone()
    async with db.acquire() as conn:
        [item] = await inbox.insert_inbound(conn, [_message(phone, "hello")])
        await conn.execute(
            "UPDATE conversations SET state = 'closed' WHERE id = $1", item.conversation_id
        )
        await inbox.insert_inbound(conn, [_message(phone, "me again", minutes=9)])
        state = await conn.fetchval(
            "SELECT state FROM conversations WHERE id = $1", item.conversation_id
        )
    assert state == "bot"


async def test_return_to_bot_idle_only_from_human_operator_from_any_state(
    db: asyncpg.Pool,
) -> None:
    async with db.acquire() as conn:
        [item] = await inbox.insert_inbound(conn, [_message(new_phone(), "hello")])
        cid = item.conversation_id

        async def state() -> tuple[str, object]:
            row = await conn.fetchrow(
                "SELECT state, handoff_at FROM conversations WHERE id = $1", cid
            )
            return row["state"], row["handoff_at"]

        await conversations.flag_for_human(conn, cid, "customer_asked")
        assert (await state())[1] is not None
        assert await conversations.return_to_bot(conn, cid)
        assert await state() == ("bot", None)
        await agent_actions.close(conn, cid)
        assert not await conversations.return_to_bot(conn, cid)  # the idle return: human only
        assert (await state())[0] == "closed"
        assert await agent_actions.return_to_bot(conn, cid)  # an operator: from closed too
        assert (await state())[0] == "bot"
        assert await agent_actions.return_to_bot(conn, cid)  # and from bot, as before
        assert not await agent_actions.return_to_bot(conn, -1)


async def test_a_connection_back_in_the_pool_keeps_no_open_transaction_nor_its_writes(
    database_url: str,
) -> None:
    # The pool skips asyncpg's per-release RESET ALL round trip; what must still hold is
    # that a connection given back mid-transaction (a cancelled handler) is rolled back.
    pool = await create_pool(database_url, min_size=1, max_size=1)
    marker = f"left-open-{uuid.uuid4().hex[:8]}"
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute(
                "INSERT INTO app_settings (key, value) VALUES ($1, '{}'::jsonb)", marker
            )
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            left = await conn.fetchval("SELECT count(*) FROM app_settings WHERE key = $1", marker)
            assert left == 0
            # Transaction-scoped advisory locks, the only kind we take, end with it.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(4242, 1)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_try_advisory_xact_lock(4242, 1)")
    finally:
        await pool.close()
