"""deploy/kuberay/: the RayCluster, and the gateway's Deployment, Service and Ingress.

Kubernetes' own objects, and the pod templates inside the RayCluster, are validated
against the published Kubernetes OpenAPI schemas that the kubernetes-validate package
ships (strict: an unknown field is an error). The RayCluster's own fields are validated
against KubeRay's published CRD when its file is in deploy/kuberay/schema/ (see the
README there); without it, only the fields KubeRay requires are checked.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml

ROOT = Path(__file__).resolve().parents[1]
KUBERAY = ROOT / "deploy" / "kuberay"
PUBLISHED_CRD = KUBERAY / "schema" / "ray.io_rayclusters.yaml"
KUBERNETES = "1.33"  # the oldest Kubernetes these manifests are written for
STRICT_SCHEMAS = f"kubernetes-json-schema/v{KUBERNETES}.0-local-strict"


def _documents(name: str) -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((KUBERAY / name).read_text()))
    return {doc["kind"]: doc for doc in docs}


def _raycluster() -> dict[str, Any]:
    return _documents("raycluster.yaml")["RayCluster"]


def _pod_templates(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = cluster["spec"]
    templates = {"head": spec["headGroupSpec"]["template"]}
    for group in spec["workerGroupSpecs"]:
        templates[group["groupName"]] = group["template"]
    return templates


@cache
def _strict_validator(schema_file: str) -> jsonschema.Draft202012Validator:
    root = resources.files(kubernetes_validate).joinpath(STRICT_SCHEMAS)
    schema = yaml.safe_load(root.joinpath(schema_file).read_text())
    definitions = yaml.safe_load(root.joinpath("_definitions.json").read_text())
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        [
            ("/api/_definitions.json", referencing.Resource.from_contents(
                definitions, default_specification=referencing.jsonschema.DRAFT202012)),
        ]
    )  # fmt: skip
    return jsonschema.Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize("kind", ["Deployment", "Service", "Ingress"])
def test_the_gateway_manifests_match_the_kubernetes_schemas(kind: str) -> None:
    manifest = _documents("gateway.yaml")[kind]
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    assert {"apiVersion", "kind", "metadata", "spec"} <= set(manifest)
    assert manifest["metadata"]["name"]


def test_kubernetes_validation_rejects_a_misspelt_field() -> None:
    deployment = _documents("gateway.yaml")["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    template = _pod_templates(_raycluster())["head"]
    with pytest.raises(jsonschema.ValidationError):
        _strict_validator("podtemplatespec-v1.json").validate(template | {"specs": {}})


def test_the_rayclusters_pod_templates_match_the_kubernetes_pod_template_schema() -> None:
    validator = _strict_validator("podtemplatespec-v1.json")
    for name, template in _pod_templates(_raycluster()).items():
        errors = [error.message for error in validator.iter_errors(template)]
        assert errors == [], name


def test_the_raycluster_has_what_kuberay_requires() -> None:
    cluster = _raycluster()
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["metadata"]["name"] == "wa-support"
    spec = cluster["spec"]
    assert spec["rayVersion"] == _pinned_ray_version()
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict) and head["template"]["spec"]["containers"]
    for group in spec["workerGroupSpecs"]:
        required = {"groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"}
        assert required <= set(group)
        replicas = group.get("replicas", group["minReplicas"])
        assert group["minReplicas"] <= replicas <= group["maxReplicas"]
        # rayStartParams values are strings in the CRD (map of string to string).
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
    assert all(isinstance(v, str) for v in head["rayStartParams"].values())


def _pinned_ray_version() -> str:
    pyproject = (ROOT / "pyproject.toml").read_text()
    return pyproject.split('"ray==', 1)[1].split('"', 1)[0]


def test_the_raycluster_matches_kuberays_published_crd() -> None:
    if not PUBLISHED_CRD.exists():
        pytest.skip(f"KubeRay's CRD is not vendored at {PUBLISHED_CRD.relative_to(ROOT)}")
    crd = yaml.safe_load(PUBLISHED_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = version["schema"]["openAPIV3Schema"]
    jsonschema.Draft7Validator(schema).validate(_raycluster())


def test_every_ray_node_and_gateway_agrees_on_token_auth_and_has_a_large_dev_shm() -> None:
    gateway = _documents("gateway.yaml")["Deployment"]["spec"]["template"]
    templates = {**_pod_templates(_raycluster()), "gateway": gateway}
    for name, template in templates.items():
        spec = template["spec"]
        container = spec["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("RAY_AUTH_MODE") == "token", name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        shm = next(v for v in spec["volumes"] if v["name"] == mounts["/dev/shm"])
        assert shm["emptyDir"]["medium"] == "Memory", name
    gateway_env = {e["name"]: e.get("value") for e in gateway["spec"]["containers"][0]["env"]}
    assert gateway_env["RAY_ADDRESS"] == f"{_raycluster()['metadata']['name']}-head-svc:6379"
    drain = int(gateway_env["SHUTDOWN_DRAIN_SECONDS"])
    assert gateway["spec"]["terminationGracePeriodSeconds"] > drain
