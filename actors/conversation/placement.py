"""Which shard hosts a phone number's virtual conversation actor.

Jump consistent hash (Lamping and Veach, 2014, arXiv:1406.2294): when the shard count
grows from n to n+1 only about 1/(n+1) of the phone numbers move. The key is hashed
with BLAKE2b because Python's hash() differs between processes.
"""

from __future__ import annotations

import hashlib


def _key64(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def jump_hash(key: int, buckets: int) -> int:
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_for(customer_phone: str, shard_count: int) -> int:
    return jump_hash(_key64(customer_phone), shard_count)
