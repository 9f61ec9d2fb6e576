"""Starting Ray and finding or creating the service's named actors.

Actors are named in a namespace with get_if_exists=True, so several gateway processes
share one set. On an external cluster (RAY_ADDRESS set) they are detached and outlive
any one gateway; with a local Ray they die with it. Their names carry the version of the
active set (actors.actor_set): a gateway of another code or SHARD_COUNT is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

import ray

from actors import actor_set
from actors.client import ActorClient, DeliveryHandle, LLMHandle, ShardHandle
from actors.conversation import ConversationShard
from actors.delivery import DeliveryActor
from actors.llm import LLMPool
from config import ProductionConfigError, Settings


def init_ray(settings: Settings) -> None:
    # Ray ≥ 2.59 turns token auth on for local clusters; every process must agree
    # (DESIGN.md §2), so the mode is always set explicitly: token in production, where the
    # token must come from the environment, disabled elsewhere unless asked for. Ray reads
    # these from the environment (its workers and our `--workers` inherit them), so values
    # that came from .env are exported.
    problem = settings.ray_auth_problem()
    if problem is not None:
        raise ProductionConfigError(problem)
    os.environ["RAY_AUTH_MODE"] = settings.effective_ray_auth_mode
    if settings.ray_auth_token is not None and settings.ray_auth_token.get_secret_value():
        os.environ.setdefault("RAY_AUTH_TOKEN", settings.ray_auth_token.get_secret_value())
    if settings.ray_auth_token_path is not None:
        os.environ.setdefault("RAY_AUTH_TOKEN_PATH", str(settings.ray_auth_token_path))
    # Ray starts its workers at nice 15, built for batch jobs beside interactive ones. Our
    # actors are the service: at 15 they starve behind the gateway and Postgres on a busy
    # host, and replies queue while the CPU goes elsewhere (issue 13's profile).
    os.environ.setdefault("RAY_worker_niceness", "0")
    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(
            address=settings.ray_address, namespace=settings.ray_namespace, log_to_driver=False
        )
        return
    ray.init(
        namespace=settings.ray_namespace,
        num_cpus=settings.ray_num_cpus or os.cpu_count() or 2,
        include_dashboard=False,
        object_store_memory=settings.ray_object_store_mb * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )


def _actor_class(cls: type) -> Any:
    # The actor modules hold plain classes; Ray's wrapping happens here, in one place.
    return ray.remote(cls)


def _options(settings: Settings, name: str, *, retries: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "name": name,
        # Actors wait on I/O; a CPU each would cap a 2-core node at two actors.
        "num_cpus": 0,
        # Async actors run this many calls at once; batching keeps the real number small.
        "max_concurrency": 10_000,
        "namespace": settings.ray_namespace,
        "get_if_exists": True,
        "max_restarts": -1,
        "max_task_retries": retries,
        # Spread over the nodes of a cluster, rather than piling onto the head.
        "scheduling_strategy": "SPREAD",
        # Ray records an event for every actor call for its dashboard's task list, and the
        # GCS keeps up to 100,000 of them: with a few calls per reply its memory grew by
        # 115 MB in five minutes of load (issue 13), and every worker spent CPU reporting
        # them. The service's own logs, metrics and Postgres say what each message did.
        "enable_task_events": False,
    }
    if settings.ray_address:
        options["lifetime"] = "detached"
    return options


@dataclass(frozen=True, slots=True)
class ActorNames:
    shards: list[str]
    llm: list[str]
    delivery: list[str]


def set_prefix(prefix: str, version: str) -> str:
    """What every actor name of one set starts with."""
    return f"{prefix}{version}:"


def actor_names(settings: Settings, prefix: str = "", version: str | None = None) -> ActorNames:
    """The names of the set of `version` (default: the one this code and settings make)."""
    start = set_prefix(prefix, version or actor_set.wanted(settings).version)
    return ActorNames(
        shards=[f"{start}shard-{i}" for i in range(settings.shard_count)],
        llm=[f"{start}llm-{i}" for i in range(settings.llm_actor_count)],
        delivery=[f"{start}delivery-{i}" for i in range(settings.delivery_actor_count)],
    )


def retire_actors(settings: Settings, version: str, prefix: str = "") -> list[str]:
    """Kill every actor of the set `version`, whatever its counts were: their names."""
    start = set_prefix(prefix, version)
    gone = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != settings.ray_namespace or not entry["name"].startswith(start):
            continue
        try:
            actor = ray.get_actor(entry["name"], namespace=settings.ray_namespace)
            ray.kill(actor, no_restart=True)
        except ValueError:  # gone meanwhile
            continue
        gone.append(entry["name"])
    return gone


def start_actors(
    settings: Settings,
    *,
    database_url: str,
    redis_url: str,
    sandbox_base_url: str | None = None,
    prefix: str = "",
) -> ActorClient:
    """Find or create the actors of the cluster's active set; ActorSetMismatch when this
    code or SHARD_COUNT is not that set's."""
    active = actor_set.claim(settings, prefix)
    names = actor_names(settings, prefix, active.version)
    llm_names, delivery_names = names.llm, names.delivery
    # LLM and delivery calls are not retried by Ray: a lost answer fails the shard's
    # request, which retries it itself, keyed by message id.
    llm = [
        cast(
            LLMHandle,
            _actor_class(LLMPool)
            .options(**_options(settings, n, retries=0))
            .remote(settings, database_url, redis_url),
        )
        for n in llm_names
    ]
    delivery = [
        cast(
            DeliveryHandle,
            _actor_class(DeliveryActor)
            .options(**_options(settings, n, retries=0))
            .remote(settings, database_url, sandbox_base_url, redis_url),
        )
        for n in delivery_names
    ]
    shards = [
        # A shard's deliver() is idempotent, so Ray may re-run it after a restart.
        cast(
            ShardHandle,
            _actor_class(ConversationShard)
            .options(**_options(settings, name, retries=-1))
            .remote(
                settings,
                i,
                settings.shard_count,
                database_url,
                redis_url,
                llm_names,
                delivery_names,
            ),
        )
        for i, name in enumerate(names.shards)
    ]
    return ActorClient(shards=shards, llm=llm, delivery=delivery)
