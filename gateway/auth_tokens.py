"""Access tokens (JWT, HS256, signed with JWT_SECRET) and opaque refresh tokens.

An access token is short-lived and stateless; the refresh token is random, stored
hashed in Postgres, and rotated on each use (store.users).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

from config import Settings
from config.settings import DEV_JWT_SECRET

ALGORITHM = "HS256"
ISSUER = "wa-support"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the access token says."""

    user_id: int
    role: str
    # The login (refresh-token family) the token belongs to, and when it ends (Unix time):
    # a live stream closes at either.
    session: str | None = None
    expires_at: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class InvalidToken(Exception):
    pass


def _key(settings: Settings) -> str:
    # Production refuses to start without JWT_SECRET (Settings.check_production).
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    # HS256 wants a key of at least 32 bytes (RFC 7518 §3.2); a passphrase of any length
    # is stretched to that with SHA-256. It adds no entropy, so set a long JWT_SECRET.
    return hashlib.sha256(b"wa-support-jwt:" + (secret or DEV_JWT_SECRET).encode()).hexdigest()


def issue_access_token(
    settings: Settings, user_id: int, role: str, session: str | None = None
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user_id),
        "role": role,
        "iat": now,
        "exp": now + settings.jwt_access_ttl_seconds,
        "iss": ISSUER,
        "typ": "access",
    }
    if session is not None:
        claims["sid"] = session
    return jwt.encode(claims, _key(settings), algorithm=ALGORITHM)


def read_access_token(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            _key(settings),
            algorithms=[ALGORITHM],  # never "none", never the token's own choice
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    role = claims.get("role")
    if claims.get("typ") != "access" or role not in ("admin", "agent"):
        raise InvalidToken("not an access token")
    try:
        sid = claims.get("sid")
        return Principal(
            user_id=int(claims["sub"]),
            role=role,
            session=sid if isinstance(sid, str) else None,
            expires_at=int(claims["exp"]),
        )
    except ValueError as exc:
        raise InvalidToken("bad subject") from exc


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)
