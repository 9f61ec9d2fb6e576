"""Retention: old webhook log rows, status history and media files are pruned in the
background, in bounded batches; recent ones stay."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from store import retention
from tests.security_fixtures import StartGateway, own_gateway  # noqa: F401
from tests.support import eventually, new_phone, stored_reply


async def _log_rows(db: asyncpg.Pool, marker: str, ages_days: list[float]) -> None:
    await db.execute(
        """INSERT INTO webhook_events (received_at, source, kind, outcome, http_status, detail)
           SELECT now() - make_interval(secs => age * 86400), 'whatsapp_cloud', 'messages',
                  'stored', 200, $1
           FROM unnest($2::float8[]) AS age""",
        marker,
        ages_days,
    )


async def _count_log(db: asyncpg.Pool, marker: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM webhook_events WHERE detail = $1", marker))


async def test_one_prune_statement_removes_at_most_one_batch(db: asyncpg.Pool) -> None:
    marker = f"retention-{uuid.uuid4().hex}"
    await _log_rows(db, marker, [400, 401, 402, 403, 404, 0])
    async with db.acquire() as conn:
        done = await retention.prune_batch(conn, "webhook_log", timedelta(days=365), 2)
    assert done == 2
    assert await _count_log(db, marker) == 4


async def test_old_log_status_history_and_media_are_pruned_in_the_background(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    marker = f"retention-{uuid.uuid4().hex}"
    await _log_rows(db, marker, [10, 10, 10, 0.1])
    old_item, old_reply = await stored_reply(db, new_phone(), "old photo", "thanks")
    new_item, new_reply = await stored_reply(db, new_phone(), "new photo", "thanks")
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE message_statuses SET at = now() - interval '10 days' WHERE message_id = $1",
            old_reply,
        )
        for item, age in ((old_item, timedelta(days=10)), (new_item, timedelta(hours=1))):
            await conn.execute(
                """INSERT INTO media (message_id, media_id, mime_type, size_bytes, content,
                                      fetched_at)
                   VALUES ($1, 'm', 'image/png', 3, 'abc', now() - $2::interval)""",
                item.message_id,
                age,
            )

    await own_gateway(
        webhook_log_retention_days=2,
        status_history_retention_days=2,
        media_retention_days=2,
        retention_sweep_seconds=0.2,
        retention_batch_size=2,  # three old log rows: two batches
    )

    async def pruned() -> bool:
        media_left = await db.fetchval(
            "SELECT count(*) FROM media WHERE message_id = $1 AND content IS NOT NULL",
            old_item.message_id,
        )
        return await _count_log(db, marker) == 1 and media_left == 0

    # A sweep prunes media after the log and the status history.
    await eventually(pruned, within=10)
    statuses = await db.fetch(
        "SELECT message_id FROM message_statuses WHERE message_id = ANY($1::bigint[])",
        [old_reply, new_reply],
    )
    assert [r["message_id"] for r in statuses] == [new_reply]
    media = {
        r["message_id"]: r
        for r in await db.fetch(
            "SELECT message_id, content, size_bytes, error FROM media"
            " WHERE message_id = ANY($1::bigint[])",
            [old_item.message_id, new_item.message_id],
        )
    }
    # The old file is gone, its record stays; the new one is kept whole.
    assert media[old_item.message_id]["content"] is None
    assert media[old_item.message_id]["size_bytes"] == 3
    assert "MEDIA_RETENTION_DAYS" in media[old_item.message_id]["error"]
    assert bytes(media[new_item.message_id]["content"]) == b"abc"


async def test_a_retention_of_zero_keeps_rows_for_ever(
    own_gateway: StartGateway,  # noqa: F811
    db: asyncpg.Pool,
) -> None:
    marker = f"retention-{uuid.uuid4().hex}"
    await _log_rows(db, marker, [5000])
    gateway = await own_gateway(webhook_log_retention_days=0, retention_sweep_seconds=0)
    from gateway.retention import RetentionSweeper
    from gateway.state import SERVICES

    sweeper = RetentionSweeper(gateway.app[SERVICES].pools, gateway.settings)
    assert "webhook_log" not in await sweeper.sweep()
    assert await _count_log(db, marker) == 1
