"""`wa-support reshard --shards N`: move a cluster's actors to N shards, or to this code.

A phone's shard is `shard_for(phone, SHARD_COUNT)`, so changing the count (or the code
the actors speak) moves conversations between shards. This is done with no gateway
routing to the set, so that no shard takes a new message meanwhile (Meta retries webhooks
while the gateways are stopped; nothing is lost):

1. refused while a gateway still beats for the cluster (stop them first);
2. the record is marked as moving: a gateway started now is refused, of either version;
3. each old shard closes (finishes the message in hand, takes no other: the waiting ones
   stay unprocessed in Postgres) and passivates its conversations to Redis snapshots;
4. the old actors are killed and the record names the new set.

The gateways are then started with the new code and SHARD_COUNT=N. Each new shard replays
the unprocessed messages of its phones in message order, and a conversation resumes from
its snapshot: the order gates in Postgres keep one phone's messages in order throughout.
"""

from __future__ import annotations

import sys
from dataclasses import replace as with_fields
from typing import Any

import ray

from actors import actor_set
from actors.runtime import init_ray, retire_actors, set_prefix
from config import Settings

CLOSE_SECONDS = 30.0


def run(settings: Settings, shards: int, *, close_seconds: float = CLOSE_SECONDS) -> int:
    if shards < 1:
        print("error: --shards must be at least 1", file=sys.stderr)
        return 2
    if not settings.ray_address:
        print(
            "error: reshard moves the actors of a shared Ray cluster: give --ray-address or "
            f"RAY_ADDRESS. With a local Ray, stop `serve` and start it with SHARD_COUNT={shards}.",
            file=sys.stderr,
        )
        return 2
    init_ray(settings)
    try:
        return _reshard(settings, shards, close_seconds)
    finally:
        ray.shutdown()


def _reshard(settings: Settings, shards: int, close_seconds: float) -> int:
    target = actor_set.ActorSet(code=actor_set.code_version(), shard_count=shards)
    active = actor_set.running(settings)
    if active is None:
        actor_set.replace(settings, target)
        print(f"no active set; the next gateway starts {target.describe()}")
        return 0
    if active.version == target.version and not active.moving_to:
        print(f"nothing to do: the active set is already {active.describe()}")
        return 0
    live = actor_set.live_gateways(settings)
    if live:
        who = ", ".join(f"{g} ({v})" for g, v in sorted(live.items()))
        print(
            f"error: gateways still use the actors: {who}. Stop them first; webhooks wait "
            "at Meta (it retries) and stored messages in Postgres.",
            file=sys.stderr,
        )
        return 2
    actor_set.replace(settings, with_fields(active, moving_to=target.version))
    print(f"moving {active.describe()} -> {target.shard_count} shards, code {target.code}")
    for name, shard in _shards(settings, active.version):
        closed = ray.get(shard.close.remote(close_seconds))
        passivated = ray.get(shard.passivate_idle.remote(0.0))
        print(
            f"  {name}: {passivated} conversations passivated to Redis, "
            f"{closed['left_queued']} waiting messages left to replay, "
            f"{closed['in_hand']} still in hand (the send ledger recovers them)"
        )
    retired = retire_actors(settings, active.version)
    now = actor_set.replace(settings, target)
    print(f"retired {len(retired)} actors; the active set is now {now.describe()}")
    print(f"start the gateways with this code and SHARD_COUNT={shards}")
    return 0


def _shards(settings: Settings, version: str) -> list[tuple[str, Any]]:
    start = set_prefix("", version) + "shard-"
    names = sorted(
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == settings.ray_namespace and entry["name"].startswith(start)
    )
    return [(n, ray.get_actor(n, namespace=settings.ray_namespace)) for n in names]
