"""The multi-node test (tests/multinode/node_loss.py), in a pytest process of its own:
it drives a 3-node `ray.cluster_utils.Cluster`, and this session already has its Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_shard_survives_the_loss_of_its_node_on_a_three_node_cluster() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    command = [sys.executable, "-m", "pytest", "tests/multinode/node_loss.py", "-q", "-x"]
    result = subprocess.run(
        [*command, "-p", "no:randomly"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
