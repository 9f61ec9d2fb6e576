"""A node that hosts a shard is removed mid-load: its conversations come back on another
node with no message lost, answered twice or answered out of order. (Run by
tests/test_multinode.py in a process of its own; the name keeps the main session from
collecting it.)"""

from __future__ import annotations

import asyncio

import ray
from ray.cluster_utils import Cluster

from actors.client import ActorClient
from fakes.graph_api import GraphApiFake
from fakes.openrouter import OpenRouterFake
from tests.support import WebhookClient, envelope, eventually, new_phone, text_message

ROUNDS = 4


def _node_of(actor: object) -> str:
    actor_id = actor._actor_id.hex()  # type: ignore[attr-defined]
    return str(ray._private.state.actors(actor_id=actor_id)["Address"]["NodeID"])


async def test_removing_the_node_of_a_shard_mid_load_loses_duplicates_and_reorders_nothing(
    ray_cluster: Cluster,
    actors: ActorClient,
    webhooks: WebhookClient,
    graph: GraphApiFake,
    openrouter: OpenRouterFake,
) -> None:
    head = ray_cluster.head_node.node_id
    workers = {n.node_id: n for n in ray_cluster.worker_nodes}
    # SPREAD usually puts a shard off the head (which holds the GCS and cannot go); if not,
    # a restart places it again.
    for _ in range(10):
        on_workers = [(s, workers[n]) for s in actors.shards if (n := _node_of(s)) in workers]
        if on_workers:
            break
        ray.kill(actors.shards[0], no_restart=False)
        await actors.ping()
    assert on_workers, f"no shard off the head node {head}"
    moved_shard, victim = on_workers[0]

    phones = [new_phone() for _ in range(8)]
    openrouter.set_latency(0.4)  # replies in flight when the node goes
    for r in range(ROUNDS):
        for phone in phones:
            response = await webhooks.post(envelope([text_message(phone, f"m{r}")]))
            assert response.status_code == 200
        if r == 1:
            await asyncio.sleep(0.3)
            ray_cluster.remove_node(victim, allow_graceful=False)
        await asyncio.sleep(0.2)

    async def answered() -> bool:
        return all(len(graph.messages_to(p)) >= ROUNDS for p in phones)

    await eventually(answered, within=150)
    await asyncio.sleep(3.0)  # a second reply, if any, would be sent by now
    for phone in phones:
        texts = [m.text for m in graph.messages_to(phone)]
        assert texts == [f"Echo: m{r}" for r in range(ROUNDS)], (phone, texts)
    assert _node_of(moved_shard) not in (victim.node_id, "")
