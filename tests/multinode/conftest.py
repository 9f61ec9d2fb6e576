"""The session's Ray, replaced for the tests of this folder by a 3-node Cluster on one host.

Run only in a process of its own (tests/test_multinode.py starts one): the main test
session has one local Ray, and a process can be the driver of one Ray only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import ray
from ray.cluster_utils import Cluster

from config import Settings


@pytest.fixture(scope="session")
def ray_cluster(settings: Settings) -> Iterator[Cluster]:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.setdefault("RAY_worker_niceness", "0")
    # A dead node is noticed in ~3 s rather than Ray's default ~30 s.
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "object_store_memory": 80 * 1024 * 1024,
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        },
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=80 * 1024 * 1024)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace=settings.ray_namespace, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
