"""One active set of actors per cluster: another code or SHARD_COUNT is refused by name."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import ray

from actors import actor_set
from actors.actor_set import ActorSetMismatch
from actors.runtime import retire_actors, start_actors
from config import Settings
from tests.test_cli import CLI, _free_port


@pytest.fixture
def own(settings: Settings, ray_cluster: None) -> Iterator[Settings]:
    """Settings in a Ray namespace of their own; its actors and records removed at the end."""
    s = settings.model_copy(
        update={"ray_namespace": f"set-{uuid.uuid4().hex[:8]}", "shard_count": 2}
    )
    yield s
    active = actor_set.running(s)
    if active is not None:
        retire_actors(s, active.version)


def _ids(handles: list[object]) -> list[str]:
    return [h._actor_id.hex() for h in handles]  # type: ignore[attr-defined]


async def test_a_gateway_with_another_shard_count_is_refused_and_names_the_running_set(
    own: Settings, database_url: str, redis_url: str
) -> None:
    first = start_actors(own, database_url=database_url, redis_url=redis_url)
    await first.ping()
    with pytest.raises(ActorSetMismatch) as refused:
        start_actors(
            own.model_copy(update={"shard_count": 3}),
            database_url=database_url,
            redis_url=redis_url,
        )
    message = str(refused.value)
    assert "2 shards" in message and "SHARD_COUNT=3" in message
    assert "wa-support reshard --shards 3" in message
    # The running set is untouched, and the same code and count attach to the same actors.
    again = start_actors(own, database_url=database_url, redis_url=redis_url)
    assert _ids(list(again.shards)) == _ids(list(first.shards))
    assert len(again.shards) == 2
    await again.ping()


async def test_a_gateway_with_other_code_is_refused_even_with_the_same_shard_count(
    own: Settings, database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = start_actors(own, database_url=database_url, redis_url=redis_url)
    await kept.ping()  # (held: a local Ray's actors die with their last handle)
    running = actor_set.running(own)
    assert running is not None and running.code == actor_set.code_version()
    monkeypatch.setattr(actor_set, "code_version", lambda: "9.9.9+wire.0123456789")
    with pytest.raises(
        ActorSetMismatch, match=re.escape(f"runs another set of actors: code {running.code}")
    ):
        start_actors(own, database_url=database_url, redis_url=redis_url)
    # Nothing of the other version was created beside the running set.
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == own.ray_namespace
    ]
    assert names and all(n.startswith(running.version + ":") for n in names)


def test_serve_with_another_shard_count_exits_2_naming_the_running_set(
    own: Settings, database_url: str, redis_url: str
) -> None:
    start_actors(own, database_url=database_url, redis_url=redis_url)
    env = {
        "PATH": "/usr/bin:/bin",
        "RAY_ADDRESS": str(ray.get_runtime_context().gcs_address),
        "RAY_AUTH_MODE": "disabled",
        "RAY_NAMESPACE": own.ray_namespace,
        "SHARD_COUNT": "3",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PORT": str(_free_port()),
        "LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [str(CLI), "serve"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the Ray cluster runs another set of actors" in result.stderr
    assert "2 shards" in result.stderr
    assert "Traceback" not in result.stderr
