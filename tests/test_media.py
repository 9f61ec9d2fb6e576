"""Customers' media is downloaded through the Graph API media endpoint, up to a size cap."""

from __future__ import annotations

import os

import asyncpg

from config import Settings
from fakes.graph_api import GraphApiFake
from tests.support import WebhookClient, envelope, eventually, message, new_phone


async def media_row(db: asyncpg.Pool, wamid: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        """SELECT d.media_id, d.mime_type, d.size_bytes, d.content, d.error, m.media_mime_type
           FROM media d JOIN messages m ON m.id = d.message_id
           WHERE m.provider_message_id = $1""",
        wamid,
    )


async def test_a_photo_is_downloaded_and_kept_with_its_message(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool
) -> None:
    photo = os.urandom(2048)
    graph.add_media("media-photo-1", photo, "image/png")
    sent = message(
        new_phone(),
        "image",
        image={"id": "media-photo-1", "mime_type": "image/png", "caption": "x"},
    )
    assert (await webhooks.post(envelope([sent]))).status_code == 200

    async def stored() -> bool:
        return await media_row(db, sent["id"]) is not None

    await eventually(stored)
    row = await media_row(db, sent["id"])
    assert row is not None
    assert bytes(row["content"]) == photo
    assert (row["mime_type"], row["size_bytes"], row["media_mime_type"]) == (
        "image/png",
        2048,
        "image/png",
    )


async def test_media_over_the_cap_is_recorded_but_not_downloaded(
    webhooks: WebhookClient, graph: GraphApiFake, db: asyncpg.Pool, settings: Settings
) -> None:
    graph.add_media("media-huge", b"\0" * (settings.media_max_bytes + 1), "video/mp4")
    sent = message(new_phone(), "video", video={"id": "media-huge", "mime_type": "video/mp4"})
    assert (await webhooks.post(envelope([sent]))).status_code == 200

    async def stored() -> bool:
        return await media_row(db, sent["id"]) is not None

    await eventually(stored)
    row = await media_row(db, sent["id"])
    assert row is not None and row["content"] is None
    assert row["size_bytes"] == settings.media_max_bytes + 1
    assert "MEDIA_MAX_BYTES" in row["error"]
