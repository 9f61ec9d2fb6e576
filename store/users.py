"""Operators, their refresh tokens and invitations.

Tokens (refresh and invite) are stored as SHA-256 digests only: the database never
holds anything that could be replayed against the API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

Role = str  # "admin" | "agent", checked by the table


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    display_name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    user: User
    password_hash: str


class EmailTaken(Exception):
    """Another operator already registered this email address."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(r: asyncpg.Record) -> User:
    return User(
        id=r["id"],
        email=r["email"],
        display_name=r["display_name"],
        role=r["role"],
        created_at=r["created_at"],
    )


_USER_COLUMNS = "id, email, display_name, role, created_at"


async def create_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    display_name: str,
    password_hash: str,
    role: Role | None,
) -> User:
    """Insert an operator. With role None, the first user becomes admin, later ones agents.

    The table lock makes "first" exact when two people register at the same moment.
    """
    async with conn.transaction():
        await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        if role is None:
            has_users = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)")
            role = "agent" if has_users else "admin"
        try:
            r = await conn.fetchrow(
                f"""INSERT INTO users (email, display_name, password_hash, role)
                    VALUES ($1, $2, $3, $4) RETURNING {_USER_COLUMNS}""",
                email,
                display_name,
                password_hash,
                role,
            )
        except asyncpg.UniqueViolationError as exc:
            raise EmailTaken(email) from exc
    assert r is not None
    return _user(r)


async def lock_for_registration(conn: asyncpg.Connection) -> None:
    """Serialise registrations (call inside a transaction): whether this is the first user,
    and so whether an invite is needed, must not change until the new row is in."""
    await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")


async def count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM users"))


async def by_id(conn: asyncpg.Connection, user_id: int) -> User | None:
    r = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return _user(r) if r is not None else None


async def credentials(conn: asyncpg.Connection, email: str) -> Credentials | None:
    r = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)", email
    )
    return Credentials(_user(r), r["password_hash"]) if r is not None else None


async def set_password_hash(conn: asyncpg.Connection, user_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def all_users(conn: asyncpg.Connection) -> list[User]:
    rows = await conn.fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id")
    return [_user(r) for r in rows]


# -- refresh tokens ----------------------------------------------------------------------
# A login starts a family; each refresh revokes the token it was given and issues the next
# one in the same family. A token used a second time revokes the family (reuse detection).


@dataclass(frozen=True, slots=True)
class Rotation:
    """The outcome of presenting a refresh token: the user and family, or a refusal."""

    user: User | None
    family: str | None
    reused: bool = False


async def add_refresh_token(
    conn: asyncpg.Connection, user_id: int, token: str, ttl: timedelta, family: str | None = None
) -> str:
    """Store a refresh token, in `family` or in a new one (a login); return the family."""
    stored: object = await conn.fetchval(
        """INSERT INTO refresh_tokens (user_id, token_hash, expires_at, family)
           VALUES ($1, $2, now() + $3::interval, COALESCE($4::uuid, gen_random_uuid()))
           RETURNING family""",
        user_id,
        digest(token),
        ttl,
        family,
    )
    return str(stored)


async def rotate_refresh_token(
    conn: asyncpg.Connection, token: str, successor: str, ttl: timedelta
) -> Rotation:
    """Trade a live token for `successor`, in one transaction, so the family is never
    without a live token in between (live streams check for one)."""
    async with conn.transaction():
        r = await conn.fetchrow(
            f"""UPDATE refresh_tokens t SET revoked_at = now(), rotated_at = now()
                FROM users u
                WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()
                  AND u.id = t.user_id
                RETURNING t.family, u.{_USER_COLUMNS.replace(", ", ", u.")}""",
            digest(token),
        )
        if r is None:
            presented = await conn.fetchrow(
                "SELECT family, rotated_at IS NOT NULL AS rotated FROM refresh_tokens"
                " WHERE token_hash = $1",
                digest(token),
            )
            if presented is None or not presented["rotated"]:
                return Rotation(None, None)  # unknown, logged out or expired
            # Traded once already: someone holds a copy. Revoke every token of the login.
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now()"
                " WHERE family = $1 AND revoked_at IS NULL",
                presented["family"],
            )
            return Rotation(None, str(presented["family"]), reused=True)
        family = str(r["family"])
        await add_refresh_token(conn, r["id"], successor, ttl, family)
    return Rotation(_user(r), family)


async def revoke_refresh_token(conn: asyncpg.Connection, token: str) -> None:
    """Logout: the token's whole family, so no earlier or later token of the login works."""
    await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = now()
           WHERE family = (SELECT family FROM refresh_tokens WHERE token_hash = $1)
             AND revoked_at IS NULL""",
        digest(token),
    )


async def session_live(conn: asyncpg.Connection, family: str) -> bool:
    """Whether a login is still on: some token of its family can still be refreshed."""
    live: bool = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM refresh_tokens
                          WHERE family = $1::uuid AND revoked_at IS NULL
                            AND expires_at > now())""",
        family,
    )
    return live


# -- invites -----------------------------------------------------------------------------


async def add_invite(
    conn: asyncpg.Connection,
    *,
    token: str,
    email: str | None,
    role: Role,
    created_by: int,
    ttl: timedelta,
) -> datetime:
    expires: datetime = await conn.fetchval(
        """INSERT INTO invites (token_hash, email, role, created_by, expires_at)
           VALUES ($1, $2, $3, $4, now() + $5::interval) RETURNING expires_at""",
        digest(token),
        email,
        role,
        created_by,
        ttl,
    )
    return expires


async def claim_invite(conn: asyncpg.Connection, token: str, email: str) -> Role | None:
    """Use an invite once; return its role, or None when it is unknown, used, expired or
    addressed to another email. Call inside the transaction that creates the user."""
    role: str | None = await conn.fetchval(
        """UPDATE invites SET used_at = now()
           WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
             AND (email IS NULL OR lower(email) = lower($2))
           RETURNING role""",
        digest(token),
        email,
    )
    return role
