"""Password hashing with argon2id (argon2-cffi's default type and parameters, RFC 9106).

Hashing is deliberately slow and memory-hard, so it runs in a thread: the event loop
keeps answering webhooks while a login is checked.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Verified against when an email is unknown, so timing does not tell which emails exist.
_DUMMY_HASH = _HASHER.hash("not a real password")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with no hash (an unknown email) verify against a dummy hash all
    the same, so both answers take one argon2 verification."""

    def check() -> bool:
        try:
            return _HASHER.verify(password_hash or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return False

    matched = await asyncio.to_thread(check)
    return matched and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)
