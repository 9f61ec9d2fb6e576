"""`wa-support user create`: an operator made on the server, without the web form.

The way to the first admin of a production service when ADMIN_BOOTSTRAP_SECRET is unset:
whoever can run this command already holds the database credentials. The password is
read from the terminal (asked twice) or, when stdin is not a terminal, from its first line.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Callable

import asyncpg

from config import Settings
from gateway.auth_passwords import hash_password
from store import users
from store.migrate import migrate

MIN_PASSWORD = 10


def read_password(
    ask: Callable[[str], str] = getpass.getpass, interactive: bool | None = None
) -> str | None:
    if not (sys.stdin.isatty() if interactive is None else interactive):
        return sys.stdin.readline().rstrip("\r\n")
    first = ask("Password: ")
    return first if ask("Password again: ") == first else None


async def _create(database_url: str, email: str, name: str, password: str, admin: bool) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        user = await users.create_user(
            conn,
            email=email,
            display_name=name,
            password_hash=await hash_password(password),
            role="admin" if admin else "agent",
        )
        return user.role
    finally:
        await conn.close()


def create(settings: Settings, email: str, name: str, *, admin: bool, password: str | None) -> int:
    from cli.servers import servers_for

    if password is None:
        print("error: the passwords do not match", file=sys.stderr)
        return 2
    if len(password) < MIN_PASSWORD:
        print(f"error: the password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 2
    # Beside a running `serve` this borrows its embedded Postgres; it never stops it.
    with servers_for(settings, "user create", redis=False) as servers:
        try:
            role = asyncio.run(_create(servers.database_url, email, name, password, admin))
        except users.EmailTaken:
            print(f"error: an operator with the email {email} already exists", file=sys.stderr)
            return 1
        print(f"created {role} {email}")
        return 0
