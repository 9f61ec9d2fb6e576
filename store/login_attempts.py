"""Failed-login counters in Redis, per account and per client IP.

In Redis rather than in memory so the limit holds across every gateway process
(DESIGN.md §3, shared limits). Each counter expires with its window.
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


async def locked_out(
    redis: Redis, prefix: str, account: str, ip: str, *, per_account: int, per_ip: int
) -> Lockout | None:
    acct_key, ip_key = _keys(prefix, account, ip)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(acct_key)
        pipe.ttl(acct_key)
        pipe.get(ip_key)
        pipe.ttl(ip_key)
        acct, acct_ttl, by_ip, ip_ttl = await pipe.execute()
    if acct is not None and int(acct) >= per_account:
        return Lockout("account", max(int(acct_ttl), 1))
    if by_ip is not None and int(by_ip) >= per_ip:
        return Lockout("ip", max(int(ip_ttl), 1))
    return None


async def record_failure(redis: Redis, prefix: str, account: str, ip: str, window: int) -> None:
    acct_key, ip_key = _keys(prefix, account, ip)
    async with redis.pipeline(transaction=True) as pipe:
        # NX: the window starts at the first failure and is not pushed back by later ones.
        for key in (acct_key, ip_key):
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        await pipe.execute()


async def clear_account(redis: Redis, prefix: str, account: str) -> None:
    await redis.delete(_keys(prefix, account, "")[0])
