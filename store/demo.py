"""Demo data for a first look at the dashboard, and the wipe that `db reset` performs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from config.vocabulary import MessageStatus as S

DEMO_BUSINESS_NUMBER = "100000000001"


@dataclass(frozen=True, slots=True)
class DemoConversation:
    phone: str
    name: str
    state: str
    labels: tuple[str, ...]
    turns: tuple[tuple[str, str], ...]  # (direction, text)
    needs_human: bool = False


DEMO = (
    DemoConversation("15550100001", "Ada Lovelace", "bot", ("order",), (
        ("inbound", "Hi! Where is my order #1042?"),
        ("outbound", "Your order #1042 left our warehouse yesterday and should arrive tomorrow."),
        ("inbound", "Great, thanks!"),
        ("outbound", "You're welcome! Anything else I can help with?"),
    )),
    DemoConversation("15550100002", "Grace Hopper", "human", ("refund", "vip"), (
        ("inbound", "I was charged twice for the same order."),
        ("outbound", "Sorry about that! I've asked a member of our team to take over."),
        ("inbound", "Please hurry, it's a lot of money."),
    ), needs_human=True),
    DemoConversation("15550100003", "Alan Turing", "closed", (), (
        ("inbound", "When are you open?"),
        ("outbound", "We are open Monday to Friday, 9:00 to 18:00."),
    )),
    DemoConversation("15550100004", "Katherine Johnson", "bot", ("shipping",), (
        ("inbound", "Do you ship to Canada?"),
        ("outbound", "Yes, we ship to Canada; delivery takes 5 to 8 working days."),
    )),
    DemoConversation("15550100005", "<b>Mallory</b>", "bot", ("test",), (
        ("inbound", "<script>alert('hi')</script> is shown as text, never run."),
        ("outbound", "Noted!"),
    )),
)  # fmt: skip


async def seed(conn: asyncpg.Connection, business_number: str = DEMO_BUSINESS_NUMBER) -> int:
    """Insert the demo conversations that are not there yet; return how many were added.

    Inbound rows are stored as already processed, so the shards never answer them.
    """
    added = 0
    now = datetime.now(UTC)
    async with conn.transaction():
        for n, demo in enumerate(DEMO):
            conversation_id = await conn.fetchval(
                """INSERT INTO conversations (business_number, customer_phone, customer_name,
                                              state, labels, needs_human,
                                              last_customer_message_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (business_number, customer_phone) DO NOTHING RETURNING id""",
                business_number, demo.phone, demo.name, demo.state, list(demo.labels),
                demo.needs_human, now - timedelta(minutes=10 * n),
            )  # fmt: skip
            if conversation_id is None:
                continue
            added += 1
            previous_inbound: int | None = None
            for i, (direction, text) in enumerate(demo.turns):
                # Customers write a minute apart; the bot answers within seconds.
                at = now - timedelta(minutes=10 * n, seconds=60 * (len(demo.turns) - i))
                if direction == "outbound":
                    at -= timedelta(seconds=57)
                wamid = f"wamid.demo-{demo.phone}-{i}"
                if direction == "inbound":
                    previous_inbound = await conn.fetchval(
                        """INSERT INTO messages (conversation_id, direction, provider_message_id,
                                                 type, text, status, provider_timestamp,
                                                 processed_at, created_at)
                           VALUES ($1, 'inbound', $2, 'text', $3, 'processed', $4, $4, $4)
                           RETURNING id""",
                        conversation_id, wamid, text, at,
                    )  # fmt: skip
                    continue
                outbound_id = await conn.fetchval(
                    """INSERT INTO messages (conversation_id, direction, type, text, status,
                                             reply_to_id, model, created_at)
                       VALUES ($1, 'outbound', 'text', $2, 'pending', $3, 'offline-faq', $4)
                       RETURNING id""",
                    conversation_id, text, previous_inbound, at,
                )  # fmt: skip
                # Step by step, so the status history trigger records a realistic trail.
                for status in (S.SENDING, S.SENT, S.DELIVERED, S.READ)[: 3 + (i % 2)]:
                    await conn.execute(
                        """UPDATE messages SET status = $2, provider_message_id = $3
                           WHERE id = $1""",
                        outbound_id, status, wamid,
                    )  # fmt: skip
                # The trigger stamped now(); spread the trail after the reply's own time.
                await conn.execute(
                    """UPDATE message_statuses s
                       SET at = $2::timestamptz + make_interval(secs => r.n)
                       FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                             FROM message_statuses WHERE message_id = $1) r
                       WHERE s.id = r.id""",
                    outbound_id, at,
                )  # fmt: skip
    return added


async def wipe(conn: asyncpg.Connection) -> list[str]:
    """Empty every table but the migration record; return the tables emptied."""
    tables = [
        r["tablename"]
        for r in await conn.fetch(
            """SELECT tablename FROM pg_tables
               WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'
               ORDER BY tablename"""
        )
    ]
    if tables:
        quoted = ", ".join(f'"{t}"' for t in tables)
        await conn.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
    return tables


async def wipe_redis(redis: Redis, prefix: str) -> int:
    """Delete this deployment's keys (snapshots, counters, limits); never FLUSHALL a shared
    server. Returns how many were deleted."""
    deleted = 0
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        deleted += int(await redis.delete(key))
    return deleted
