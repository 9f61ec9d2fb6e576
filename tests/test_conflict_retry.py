"""A batched write Postgres picks as a deadlock's victim is run again, not failed.

Batched transactions (the gateway's group commit, a shard's turns, a delivery actor's
claims) update many rows each, so two can take row locks in opposite orders. Postgres
then aborts one; before the retry that was a 503 for a whole group commit of webhooks.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from store.db import is_conflict, retry_conflicts


async def _table(db: asyncpg.Pool) -> str:
    name = f"t_conflict_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, n int NOT NULL)")
    await db.execute(f"INSERT INTO {name} VALUES (1, 0), (2, 0)")
    return name


async def test_the_victim_of_a_real_deadlock_is_retried_and_both_writes_land(
    db: asyncpg.Pool,
) -> None:
    table = await _table(db)
    other_has_row_2 = asyncio.Event()
    we_have_row_1 = asyncio.Event()
    tries = 0

    async def ours() -> None:
        # Locks row 1, then wants row 2 (held by the other side): the cycle. Its short
        # deadlock_timeout makes it the one Postgres aborts, on the first try only.
        nonlocal tries
        tries += 1
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL deadlock_timeout = '100ms'")
            await conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
            we_have_row_1.set()
            await other_has_row_2.wait()
            await conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 2")

    async def theirs() -> None:
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL deadlock_timeout = '10s'")
            await conn.execute(f"UPDATE {table} SET n = n + 10 WHERE id = 2")
            other_has_row_2.set()
            await we_have_row_1.wait()
            await conn.execute(f"UPDATE {table} SET n = n + 10 WHERE id = 1")

    await asyncio.wait_for(asyncio.gather(retry_conflicts(ours), theirs()), 20)
    assert tries == 2  # aborted once by Postgres, then through
    rows = dict(await db.fetch(f"SELECT id, n FROM {table} ORDER BY id"))  # type: ignore[arg-type]
    assert rows == {1: 11, 2: 11}  # both transactions' writes, each once


async def test_other_errors_are_not_retried(db: asyncpg.Pool) -> None:
    tries = 0

    async def refused() -> None:
        nonlocal tries
        tries += 1
        await db.execute("SELECT 1/0")

    with pytest.raises(asyncpg.DivisionByZeroError) as raised:
        await retry_conflicts(refused)
    assert tries == 1 and not is_conflict(raised.value)
