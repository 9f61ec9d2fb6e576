"""ray_cluster.yaml and its cloud variant: what `ray up` accepts, and what they start."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.exceptions import ClickException
from ray.autoscaler._private.commands import _bootstrap_config
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "ray_cluster.yaml"
AWS = ROOT / "deploy" / "ray_cluster.aws.yaml"
START_GATEWAY = ROOT / "deploy" / "start_gateway.sh"


def _load(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    assert isinstance(config, dict)
    return config


def _ray_up_checks(config: dict[str, Any]) -> dict[str, Any]:
    # What `ray up` does before it touches a node (commands.create_or_update_cluster):
    # prepare_config, the provider's defaults, then ray-schema.json and validate_config.
    return _bootstrap_config(copy.deepcopy(config), no_config_cache=True)


def test_ray_cluster_yaml_passes_the_checks_of_ray_up() -> None:
    resolved = _ray_up_checks(_load(LOCAL))
    assert resolved["provider"]["type"] == "local"
    assert resolved["available_node_types"]["local.cluster.node"]["max_workers"] == 2


def test_ray_up_refuses_a_mistyped_key_and_node_types_on_the_local_provider() -> None:
    # The same checks fail on the mistakes they exist for, so the test above means something.
    typo = _load(LOCAL) | {"setup_command": ["true"]}
    with pytest.raises(jsonschema.ValidationError, match="setup_command"):
        _ray_up_checks(typo)
    typed = _load(LOCAL) | {"available_node_types": {"x": {"resources": {}, "node_config": {}}}}
    with pytest.raises(ClickException, match="available_node_types"):
        _ray_up_checks(typed)


def test_the_aws_variant_with_node_types_passes_ray_schema_and_validator() -> None:
    # bootstrap_aws would call AWS; everything before it runs here.
    config = prepare_config(_load(AWS))
    validate_config(config)
    types = config["available_node_types"]
    assert config["head_node_type"] == "head"
    assert set(types) == {"head", "gateway", "actors"}
    assert "touch ~/.wa-support-gateway" in types["gateway"]["worker_setup_commands"]
    assert "touch ~/.wa-support-gateway" not in "\n".join(config["worker_setup_commands"])


@pytest.mark.parametrize("path", [LOCAL, AWS], ids=["local", "aws"])
def test_every_node_takes_ray_auth_and_secrets_from_the_env_file_and_starts_the_gateway(
    path: Path,
) -> None:
    config = _load(path)
    assert config["file_mounts"]["~/wa-support.env"] == "./wa-support.env"
    assert "wa-support.env" in config["rsync_exclude"]  # never copied with the checkout
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        commands = config[key]
        ray_start = next(c for c in commands if "ray start" in c)
        assert ". ~/wa-support.env" in ray_start
        # Drain the gateway before Ray stops under it.
        assert commands[0] == "bash ~/wa-support/deploy/start_gateway.sh stop"
        assert commands.index(commands[0]) < next(
            i for i, c in enumerate(commands) if "ray stop" in c
        )
    assert any(c.endswith("start_gateway.sh") for c in config["worker_start_ray_commands"])
    # Comments aside (yaml drops them), nothing sets a secret or Ray's auth mode inline.
    inline = yaml.safe_dump(config)
    assert re.findall(r"[A-Z_]*(?:SECRET|TOKEN|API_KEY|AUTH_MODE|PASSWORD)=", inline) == []


def _start_gateway(tmp_path: Path, env_file: str, node_ips: str, *args: str) -> str:
    (tmp_path / "wa-support.env").write_text(env_file)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WA_DRY_RUN": "1",
        "WA_NODE_IPS": node_ips,
        "RAY_HEAD_IP": "192.0.2.10",
    }
    done = subprocess.run(
        ["bash", str(START_GATEWAY), *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_only_the_nodes_that_take_webhooks_start_a_gateway_joined_to_the_head(
    tmp_path: Path,
) -> None:
    env_file = 'RAY_AUTH_MODE=token\nWA_GATEWAY_IPS="192.0.2.11 192.0.2.12"\nGATEWAY_WORKERS=2\n'
    started = _start_gateway(tmp_path, env_file, "192.0.2.11 10.9.9.9")
    assert started == (
        "RAY_ADDRESS=192.0.2.10:6379 RAY_AUTH_MODE=token "
        f"{tmp_path}/wa-support-venv/bin/wa-support serve --workers 2"
    )
    assert "actors only" in _start_gateway(tmp_path, env_file, "192.0.2.13")
    # A cloud node type marks its nodes instead of listing addresses.
    (tmp_path / ".wa-support-gateway").touch()
    assert "serve" in _start_gateway(tmp_path, "RAY_AUTH_MODE=token\n", "192.0.2.13")
    assert _start_gateway(tmp_path, env_file, "192.0.2.11", "stop") == "stop"
