"""GET /api/webhooks/health: what an uptime check reads about the webhook receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson

from gateway.app import WEBHOOK_PATH
from gateway.signature import HEADER, sign
from tests.conftest import APP_SECRET
from tests.support import envelope, eventually, new_phone, text_message


async def test_it_reports_the_last_webhook_refusals_and_a_stuck_backlog_as_503(
    api: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    before = (await api.get("/api/webhooks/health")).json()
    raw = orjson.dumps(envelope([text_message(new_phone(), "hi")]))
    ok = await api.post(WEBHOOK_PATH, content=raw, headers={HEADER: sign(raw, APP_SECRET)})
    assert ok.status_code == 200
    forged = await api.post(WEBHOOK_PATH, content=raw, headers={HEADER: sign(raw, "forged")})
    assert forged.status_code in (401, 403)

    after: dict = {}

    async def logged() -> bool:
        # The webhook log is written in the background, beside the group commit.
        after.update((await api.get("/api/webhooks/health")).json())
        return after["bad_signatures_last_hour"] > before["bad_signatures_last_hour"]

    await eventually(logged)
    last = datetime.fromisoformat(after["last_webhook_at"])
    assert datetime.now(tz=UTC) - last < timedelta(minutes=1)
    assert after["bad_signatures_last_hour"] == before["bad_signatures_last_hour"] + 1
    assert after["refused_last_hour"] >= before["refused_last_hour"] + 1

    # A message stored long ago and never answered: the pipeline is stuck somewhere.
    conversation_id = await db.fetchval(
        """INSERT INTO conversations (business_number, customer_phone) VALUES ('1', $1)
           RETURNING id""",
        new_phone(),
    )
    stuck_id = await db.fetchval(
        """INSERT INTO messages (conversation_id, direction, provider_message_id, type, text,
                                 status, created_at)
           VALUES ($1, 'inbound', $2, 'text', 'stuck', 'received', now() - interval '1 day')
           RETURNING id""",
        conversation_id,
        f"wamid.stuck-{conversation_id}",
    )
    try:
        stuck = await api.get("/api/webhooks/health")
        assert stuck.status_code == 503
        body = stuck.json()
        assert body["status"] == "backlogged" and body["backlog"] >= 1
        assert body["oldest_backlog_seconds"] >= 86_000 > body["backlog_max_age_seconds"]
    finally:
        await db.execute("UPDATE messages SET processed_at = now() WHERE id = $1", stuck_id)
    assert (await api.get("/api/webhooks/health")).json()["oldest_backlog_seconds"] != (
        body["oldest_backlog_seconds"]
    )
