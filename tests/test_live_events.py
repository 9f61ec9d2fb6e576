"""The gateway hears the live-events channel only while a browser listens; refusals always."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from structlog.testing import capture_logs

from fakes.graph_webhooks import status_payload
from gateway.events import Announcer, LiveEvents
from store import live_events, webhook_lag
from tests.support import BUSINESS_NUMBER, DISPLAY_NUMBER, eventually, new_phone


async def _subscribers(redis: Redis, channel: str) -> int:
    counts = dict(await redis.pubsub_numsub(channel))
    return int(counts.get(channel.encode(), 0))


async def test_the_relay_runs_only_while_a_browser_listens_and_refusals_are_always_logged(
    redis_url: str,
) -> None:
    redis = Redis.from_url(redis_url)
    prefix = f"wa-test-live-{uuid.uuid4().hex[:8]}:"
    live, notices = live_events.channel(prefix), live_events.notices_channel(prefix)
    events = LiveEvents(redis, prefix)
    events.start()
    try:
        await eventually(lambda: _is(redis, notices, 1))
        # Nobody watching: the replies' events are not read (nor parsed) by this gateway.
        await live_events.publish(redis, prefix, "message.processed", message_id=1)
        assert await _subscribers(redis, live) == 0 and not events.relaying
        with capture_logs() as alone:
            await live_events.publish(
                redis, prefix, live_events.REPLY_REFUSED, message_id=0, reason="no template"
            )

            async def logged_alone() -> bool:
                return any(e["event"] == "reply_refused" for e in alone)

            await eventually(logged_alone)
        assert not events.relaying

        browser = events.subscribe()
        await eventually(lambda: _is(redis, live, 1))
        await live_events.publish(redis, prefix, "message.processed", message_id=2)
        assert b'"message_id":2' in await asyncio.wait_for(browser.get(), 5)

        # The last browser leaves: the next event ends the relay.
        events.unsubscribe(browser)
        await live_events.publish(redis, prefix, "message.processed", message_id=3)
        await eventually(lambda: _is(redis, live, 0))
        assert not events.relaying

        # A refusal is logged with no browser at all, and reaches one that comes back.
        again = events.subscribe()
        await eventually(lambda: _is(redis, live, 1))
        with capture_logs() as logs:
            await live_events.publish(
                redis, prefix, live_events.REPLY_REFUSED, message_id=4, reason="window closed"
            )
            assert b'"message_id":4' in await asyncio.wait_for(again.get(), 5)

            async def logged() -> bool:
                return any(e["event"] == "reply_refused" for e in logs)

            await eventually(logged)
        assert [e["reason"] for e in logs if e["event"] == "reply_refused"] == ["window closed"]
    finally:
        await events.stop()
        await redis.aclose()


async def _is(redis: Redis, channel: str, count: int) -> bool:
    return await _subscribers(redis, channel) == count


async def test_the_age_of_stored_status_webhooks_is_published_for_the_unknown_outcome_wait(
    redis_url: str,
) -> None:
    # An announcer of its own: the session's gateway hears other tests' statuses too.
    redis = Redis.from_url(redis_url)
    prefix = f"wa-test-lag-{uuid.uuid4().hex[:8]}:"
    announcer = Announcer(redis, prefix)
    announcer.start()
    try:
        # Meta stamped this status 200 s ago: webhooks reach us that late (a backlog).
        announcer.note_status_age(200.0)

        async def published() -> bool:
            return await webhook_lag.current(redis, prefix) >= 199

        await eventually(published)
        assert await redis.ttl(prefix + webhook_lag.KEY) <= webhook_lag.EXPIRES_SECONDS
        # A fresh status beside it: the pipeline is not behind, whatever one straggler says.
        announcer.note_status_age(1.0)

        async def caught_up() -> bool:
            return await webhook_lag.current(redis, prefix) < 5

        await eventually(caught_up)
        # A straggler alone, after fresh ones within the window, changes nothing.
        announcer.note_status_age(3600.0)
        await asyncio.sleep(0.3)
        assert await webhook_lag.current(redis, prefix) < 5
    finally:
        await announcer.stop()
        await redis.delete(prefix + webhook_lag.KEY)
        await redis.aclose()


async def test_the_gateway_notes_how_old_the_statuses_it_stores_are(
    webhooks: Any, redis: Redis, redis_prefix: str
) -> None:
    # Through the session's gateway: a status stamped an hour ago is published as lag
    # unless a fresher one came within the window; either way the key is written.
    await redis.delete(redis_prefix + webhook_lag.KEY)
    try:
        assert (await webhooks.post(_status(int(time.time()) - 3600))).status_code == 200

        async def written() -> bool:
            return bool(await redis.exists(redis_prefix + webhook_lag.KEY))

        await eventually(written)
    finally:
        await redis.delete(redis_prefix + webhook_lag.KEY)


def _status(stamped: int) -> dict[str, Any]:
    return status_payload(
        waba_id="WABA", display_phone_number=DISPLAY_NUMBER, phone_number_id=BUSINESS_NUMBER,
        wamid=f"wamid.lag-{uuid.uuid4().hex}", status="delivered", recipient_id=new_phone(),
        timestamp=stamped,
    )  # fmt: skip
