"""Which set of actors a Ray cluster runs, and the rule that there is only one.

A phone's messages go to shard `shard_for(phone, SHARD_COUNT)`. Two gateways with
different SHARD_COUNTs, or with code that speaks different wire types, would send one
phone's messages to two shards that each keep their own order and their own copy of the
conversation. So:

- every actor name carries the set's version (package version, a hash of actors/wire.py,
  SHARD_COUNT): two versions can never share, or half-share, actors by name;
- the cluster holds one record of the active set in Ray's internal KV. The first gateway
  writes it (an atomic put-if-absent); a gateway of another version refuses to start and
  names the running set. Only `wa-support reshard` replaces the record.
- each gateway keeps a heartbeat beside the record, so `reshard` can tell whether a
  gateway still uses the set before it retires it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from ray.experimental import internal_kv

from config import Settings

RECORD_KEY = "actor-set"
GATEWAY_KEYS = "gateways/"
# A gateway beats every HEARTBEAT_SECONDS; one silent for three beats is gone.
HEARTBEAT_SECONDS = 5.0
GATEWAY_GONE_SECONDS = 3 * HEARTBEAT_SECONDS


class ActorSetMismatch(RuntimeError):
    """This gateway's code or SHARD_COUNT is not the cluster's active set's."""


def code_version() -> str:
    """The package version and a hash of the wire types the actors exchange."""
    wire = Path(__file__).with_name("wire.py").read_bytes()
    return f"{metadata.version('wa-support')}+wire.{hashlib.sha256(wire).hexdigest()[:10]}"


@dataclass(frozen=True, slots=True)
class ActorSet:
    code: str
    shard_count: int
    since: str = ""
    by: str = ""
    # Set while `wa-support reshard` retires this set for that version: no gateway starts.
    moving_to: str = ""

    @property
    def version(self) -> str:
        return f"{self.code}-s{self.shard_count}"

    def describe(self) -> str:
        origin = f" (since {self.since}, by {self.by})" if self.since else ""
        return f"code {self.code}, {self.shard_count} shards{origin}"


def wanted(settings: Settings) -> ActorSet:
    return ActorSet(code=code_version(), shard_count=settings.shard_count)


def _kv_namespace(settings: Settings) -> str:
    # No ":" of ours: Ray's KV listing cuts the namespace off the keys at the first one.
    return f"wa-support.{settings.ray_namespace}"


def _stamped(actor_set: ActorSet) -> ActorSet:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return ActorSet(actor_set.code, actor_set.shard_count, now, _this_process())


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def running(settings: Settings, prefix: str = "") -> ActorSet | None:
    raw = internal_kv._internal_kv_get(prefix + RECORD_KEY, namespace=_kv_namespace(settings))
    if raw is None:
        return None
    return ActorSet(**json.loads(raw))


def claim(settings: Settings, prefix: str = "") -> ActorSet:
    """The active set, written as ours if the cluster has none; refused if it is another."""
    ours = _stamped(wanted(settings))
    key, ns = prefix + RECORD_KEY, _kv_namespace(settings)
    existed = internal_kv._internal_kv_put(key, json.dumps(asdict(ours)), False, namespace=ns)
    if not existed:
        return ours
    active = running(settings, prefix)
    if active is None:  # retired between the put and the read: try once more
        return claim(settings, prefix)
    if active.moving_to:
        raise ActorSetMismatch(
            f"`wa-support reshard` is moving the actors from {active.describe()} to "
            f"{active.moving_to}; start the gateways once it is done (run it again if it "
            "was interrupted)"
        )
    if active.version != ours.version:
        raise ActorSetMismatch(mismatch_message(active, ours))
    return active


def mismatch_message(active: ActorSet, ours: ActorSet) -> str:
    return (
        f"the Ray cluster runs another set of actors: {active.describe()}. This gateway "
        f"has code {ours.code} and SHARD_COUNT={ours.shard_count}; it would split phones' "
        "messages over two sets of shards, so it does not start. Run it with the running "
        f"code and SHARD_COUNT={active.shard_count}, or move the set first with "
        f"`wa-support reshard --shards {ours.shard_count}` (run with this code)."
    )


def replace(settings: Settings, new: ActorSet, prefix: str = "") -> ActorSet:
    """Make `new` the active set (reshard only: first the old set marked `moving_to`,
    then, once it is retired, the new one)."""
    stamped = _stamped(new) if not new.moving_to else new
    internal_kv._internal_kv_put(
        prefix + RECORD_KEY, json.dumps(asdict(stamped)), True, namespace=_kv_namespace(settings)
    )
    return stamped


def beat(settings: Settings, version: str, prefix: str = "") -> None:
    """This gateway uses `version` now (called every HEARTBEAT_SECONDS while it serves)."""
    key = f"{prefix}{GATEWAY_KEYS}{_this_process()}"
    value = json.dumps({"version": version, "at": time.time()})
    internal_kv._internal_kv_put(key, value, True, namespace=_kv_namespace(settings))


def leave(settings: Settings, prefix: str = "") -> None:
    key = f"{prefix}{GATEWAY_KEYS}{_this_process()}"
    internal_kv._internal_kv_del(key, namespace=_kv_namespace(settings))


def live_gateways(settings: Settings, prefix: str = "") -> dict[str, str]:
    """Gateways that beat within GATEWAY_GONE_SECONDS: "host:pid" -> the version they use."""
    ns, start = _kv_namespace(settings), f"{prefix}{GATEWAY_KEYS}"
    live = {}
    for listed in internal_kv._internal_kv_list(start, namespace=ns):
        # The key as listed may still carry part of the namespace: rebuilt from its end.
        gateway = listed.decode().rsplit(GATEWAY_KEYS, 1)[-1]
        raw = internal_kv._internal_kv_get(start + gateway, namespace=ns)
        if raw is None:
            continue
        entry = json.loads(raw)
        if time.time() - float(entry["at"]) < GATEWAY_GONE_SECONDS:
            live[gateway] = str(entry["version"])
    return live


async def heartbeat(settings: Settings, version: str, prefix: str = "") -> None:
    """Beat until cancelled; a beat that fails (the GCS restarting) is tried again later."""
    try:
        while True:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(beat, settings, version, prefix)
            await asyncio.sleep(HEARTBEAT_SECONDS)
    finally:
        with contextlib.suppress(Exception):
            leave(settings, prefix)
