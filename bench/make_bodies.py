"""Pre-signed webhook bodies for wrk, which has no HMAC: one fixed-width record a line.

Each line is `sha256=<64 hex> <json body>\n`, every line the same length, so a wrk
thread can seek straight to record k at byte k * width (see bench/webhook.lua). Every
record carries a unique wamid, so every request the gateway gets is a new message that
it must insert (a duplicate does no insert and would flatter the numbers). Customers
are drawn from a fixed pool of phone numbers, so conversations are both created and
updated, as with real traffic.

    python bench/make_bodies.py --out /tmp/bodies.txt --count 100000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.signature import sign
from tests.support import envelope, text_message

SECRET = "bench-secret"


def phone_pool(size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["49" + "".join(rng.choices("0123456789", k=10)) for _ in range(size)]


def record(index: int, *, tag: str, phones: list[str], secret: str, timestamp: str) -> bytes:
    phone = phones[index % len(phones)]
    msg = text_message(
        phone,
        f"Hello, where is my order {index:010d}? Thanks!",
        wamid=f"wamid.BENCH{tag}{index:010d}",
    )
    msg["timestamp"] = timestamp
    body = orjson.dumps(envelope([msg], name="Bench Customer"))
    return sign(body, secret).encode() + b" " + body + b"\n"


def append_records(
    path: Path,
    start: int,
    count: int,
    *,
    tag: str,
    phones: list[str],
    secret: str = SECRET,
    rewrite: Callable[[bytes], bytes] | None = None,
) -> int:
    """Append records start..start+count-1 to path; return the record width in bytes.

    `rewrite` turns each record's body into another (re-signed here), for an app that
    needs other fields."""
    timestamp = str(int(time.time()))
    width = 0
    with path.open("ab") as out:
        chunk: list[bytes] = []
        for i in range(start, start + count):
            line = record(i, tag=tag, phones=phones, secret=secret, timestamp=timestamp)
            if rewrite is not None:
                body = rewrite(line.rstrip(b"\n").split(b" ", 1)[1])
                line = sign(body, secret).encode() + b" " + body + b"\n"
            if width == 0:
                width = len(line)
            elif len(line) != width:
                raise ValueError(f"record {i} is {len(line)} bytes, not {width}")
            chunk.append(line)
            if len(chunk) >= 10_000:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))
    return width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--secret", default=SECRET)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--tag", default=f"{random.getrandbits(32):08x}")
    args = parser.parse_args()
    args.out.unlink(missing_ok=True)
    width = append_records(
        args.out,
        0,
        args.count,
        tag=args.tag,
        phones=phone_pool(args.customers, 1),
        secret=args.secret,
    )
    print(f"{args.count} records of {width} bytes in {args.out}")


if __name__ == "__main__":
    main()
