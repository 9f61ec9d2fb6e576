"""The Dockerfile, its entrypoint, docker-compose.yaml and the TLS proxy in front of it."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
GATEWAYS = ("gateway-a", "gateway-b")
# What `docker compose config` needs to interpolate: the required variables, fake values.
REQUIRED_ENV = {
    "RAY_AUTH_TOKEN": "test-ray-token",
    "POSTGRES_PASSWORD": "test-pg",
    "REDIS_PASSWORD": "test-redis",
    "WHATSAPP_ACCESS_TOKEN": "test-access",
    "WHATSAPP_PHONE_NUMBER_ID": "123",
    "WHATSAPP_APP_SECRET": "test-app-secret",
    "WHATSAPP_VERIFY_TOKEN": "test-verify",
    "OPENROUTER_API_KEY": "test-openrouter",
    "JWT_SECRET": "test-jwt",
}


def _compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) if it runs here, else Debian's `docker-compose`."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed on this machine")
    # Only what the tools need: the test session's own variables (RAY_AUTH_MODE among
    # them) would otherwise be interpolated into the file.
    clean = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_HOST") if k in os.environ}
    return subprocess.run(
        [*command, "-f", str(COMPOSE), "config"],
        env=clean | env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def _raw_compose() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(compose, dict)
    return compose


def test_docker_compose_config_accepts_the_file_with_the_secrets_set() -> None:
    done = _compose_config(REQUIRED_ENV)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"postgres", "redis", "ray-head", "proxy", *GATEWAYS} <= set(services)
    for name in GATEWAYS:
        env = services[name]["environment"]
        assert env["RAY_ADDRESS"] == "ray-head:6379"
        assert env["RAY_AUTH_TOKEN"] == "test-ray-token" and env["RAY_AUTH_MODE"] == "token"
        assert env["DATABASE_URL"] == "postgresql://wa:test-pg@postgres:5432/wa_support"
        assert env["APP_ENV"] == "production"
    assert services["ray-head"]["environment"]["RAY_AUTH_TOKEN"] == "test-ray-token"


def test_docker_compose_refuses_to_start_without_a_secret_and_names_it() -> None:
    done = _compose_config({k: v for k, v in REQUIRED_ENV.items() if k != "JWT_SECRET"})
    assert done.returncode != 0
    assert "JWT_SECRET" in done.stderr or "operator sessions" in done.stderr


def test_two_gateways_share_one_ray_and_are_reached_only_through_the_tls_proxy() -> None:
    services = _raw_compose()["services"]
    head = services["ray-head"]["command"]
    assert head[:3] == ["ray", "start", "--head"] and "--port=6379" in head
    for name in GATEWAYS:
        gateway = services[name]
        assert gateway["environment"]["RAY_ADDRESS"] == "ray-head:6379"
        assert "ports" not in gateway  # no plain-HTTP way in from outside
        assert gateway["init"] is True  # SIGTERM reaches `serve`, which drains
        drain = int(str(gateway["environment"]["SHUTDOWN_DRAIN_SECONDS"]).split(":-")[1][:-1])
        assert int(gateway["stop_grace_period"].rstrip("s")) > drain + 3
        assert gateway["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert services["proxy"]["ports"] == ["80:80", "443:443"]
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", CADDYFILE.read_text())
    assert upstreams is not None
    assert upstreams.group(1).split() == [f"{name}:8080" for name in GATEWAYS]


def test_every_ray_container_has_more_dev_shm_than_rays_object_store() -> None:
    services = _raw_compose()["services"]
    store_bytes = 200_000_000  # --object-store-memory of the head, and the gateways' cap
    assert f"--object-store-memory={store_bytes}" in services["ray-head"]["command"]
    for name in ("ray-head", *GATEWAYS):
        size = services[name]["shm_size"]
        assert size.endswith("m") and int(size[:-1]) * 1024 * 1024 > store_bytes


def test_the_caddyfile_is_valid_for_a_local_and_a_public_certificate(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed here (Debian: apt-get install caddy)")
    for site, tls in (("localhost", "internal"), ("wa.example.com", "ops@example.com")):
        home = str(tmp_path)
        env = {"PATH": os.environ["PATH"], "HOME": home, "XDG_DATA_HOME": home,
               "XDG_CONFIG_HOME": home, "SITE_ADDRESS": site, "CADDY_TLS": tls}  # fmt: skip
        done = subprocess.run(
            [caddy, "adapt", "--config", str(CADDYFILE), "--validate"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        config = json.loads(done.stdout)
        route = config["apps"]["http"]["servers"]["srv0"]
        assert route["listen"] == [":443"]
        assert site in json.dumps(route["routes"][0]["match"])


def _dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text()).splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if line and not line.startswith("#") and stages:
            stages[-1].append(line)
    return stages


def test_the_image_is_slim_runs_as_a_user_and_checks_the_liveness_endpoint() -> None:
    final = _dockerfile_stages()[-1]
    assert final[0] == "FROM python:3.11-slim"
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    healthcheck = next(line for line in final if line.startswith("HEALTHCHECK "))
    assert "/health" in healthcheck
    assert 'add_get("/health"' in (ROOT / "gateway" / "app.py").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "wa-support.env", ".venv", ".git"} <= set(ignored)


class _Liveness(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def liveness_port() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Liveness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_healthcheck_command_passes_on_a_live_service_and_fails_on_a_dead_one(
    liveness_port: int,
) -> None:
    healthcheck = next(line for line in _dockerfile_stages()[-1] if line.startswith("HEALTHCHECK "))
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    run = ["python3", *command[1:]]
    alive = subprocess.run(run, env={"PORT": str(liveness_port)}, capture_output=True, timeout=10)
    assert alive.returncode == 0, alive.stderr
    with _free_port() as dead:
        gone = subprocess.run(run, env={"PORT": str(dead)}, capture_output=True, timeout=10)
    assert gone.returncode != 0


class _free_port:
    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))  # bound, never listening: connections refused
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


def _fake_bin(tmp_path: Path) -> Path:
    # Stand-ins for `ray` and `wa-support` that say how they were called.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ray", "wa-support"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\n')
        tool.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ["wa-support serve --workers 2"]),
        (
            {"RAY_ADDRESS": "ray-head:6379"},
            [
                "ray start --address=ray-head:6379 --num-cpus=0 "
                "--object-store-memory=157286400 --disable-usage-stats",
                "wa-support serve --workers 2",
            ],
        ),
        (
            {"RAY_ADDRESS": "ray-head:6379", "RAY_JOIN_CLUSTER": "0"},
            ["wa-support serve --workers 2"],
        ),
    ],
    ids=["local-ray", "joins-the-cluster", "already-a-node"],
)
def test_the_entrypoint_joins_the_ray_cluster_before_serving_when_given_an_address(
    tmp_path: Path, env: dict[str, str], expected: list[str]
) -> None:
    calls = tmp_path / "calls"
    full = {"PATH": f"{_fake_bin(tmp_path)}:/usr/bin:/bin", "CALLS": str(calls), **env}
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "serve", "--workers", "2"], env=full, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == expected


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_the_deployment_docs_link_only_files_that_exist(doc: str) -> None:
    path = ROOT / doc
    links = re.findall(r"\]\(([^)#]+)\)", path.read_text())
    local = [link for link in links if "://" not in link]
    assert any("docker-compose.yaml" in link for link in local)
    missing = [link for link in local if not (path.parent / link).exists()]
    assert missing == []
