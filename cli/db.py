"""`wa-support db seed` and `wa-support db reset`: demo data, and a clean slate.

Reset asks for confirmation (or --yes) and is refused outright in production mode,
where an accident would cost real conversations.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

import asyncpg
from redis.asyncio import Redis

from config import Settings
from store import demo
from store.migrate import migrate

CONFIRM_WORD = "reset"


def _where(dsn: str) -> str:
    # Host and database only: the DSN may carry a password.
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'local socket'}/{parts.path.lstrip('/') or '?'}"


async def _seed(database_url: str, business_number: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        return await demo.seed(conn, business_number)
    finally:
        await conn.close()


async def _reset(database_url: str, redis_url: str, prefix: str) -> tuple[list[str], int]:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        tables = await demo.wipe(conn)
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url)
    try:
        keys = await demo.wipe_redis(redis, prefix)
    finally:
        await redis.aclose()
    return tables, keys


def run(
    settings: Settings,
    action: str,
    *,
    assume_yes: bool = False,
    ask: Callable[[str], str] = input,
) -> int:
    from cli.servers import servers_for

    if action == "reset" and settings.is_production:
        print("error: db reset is refused in production mode (APP_ENV=production)",
              file=sys.stderr)  # fmt: skip
        return 2
    # Beside a running `serve` this borrows its embedded servers; it never stops them.
    with servers_for(settings, f"db {action}", redis=action == "reset") as servers:
        database_url, redis_url = servers.database_url, servers.redis_url
        if action == "seed":
            business = settings.whatsapp_phone_number_id or demo.DEMO_BUSINESS_NUMBER
            added = asyncio.run(_seed(database_url, business))
            print(f"seeded {added} demo conversation(s) into {_where(database_url)}")
            return 0
        if not assume_yes:
            answer = ask(
                f"This deletes every conversation, message, operator and setting in "
                f"{_where(database_url)}. Type '{CONFIRM_WORD}' to confirm: "
            )
            if answer.strip() != CONFIRM_WORD:
                print("not confirmed; nothing was deleted")
                return 1
        tables, keys = asyncio.run(_reset(database_url, redis_url, settings.redis_key_prefix))
        print(f"emptied {len(tables)} table(s) and {keys} Redis key(s)")
        return 0
