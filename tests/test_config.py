"""Configuration: embedded defaults, production refusals, and the documented variables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from config import ProductionConfigError, Settings
from config.settings import DEV_APP_SECRET

ROOT = Path(__file__).resolve().parents[1]


def test_with_nothing_set_the_service_uses_embedded_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url is None and settings.redis_url is None
    assert settings.uses_sandbox_delivery and settings.uses_offline_responder
    assert settings.app_secret() == DEV_APP_SECRET
    settings.check_production()  # development mode never refuses


def test_production_without_secrets_refuses_and_names_each_missing_variable() -> None:
    settings = Settings(_env_file=None, app_env="production", database_url="postgresql://x/y")  # type: ignore[call-arg]
    with pytest.raises(ProductionConfigError) as refused:
        settings.check_production()
    message = str(refused.value)
    for name in (
        "REDIS_URL",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_ACCESS_TOKEN",
        "OPENROUTER_API_KEY",
        "JWT_SECRET",
    ):
        assert name in message
    assert "DATABASE_URL" not in message


def test_production_with_every_secret_starts() -> None:
    Settings(  # type: ignore[call-arg]
        _env_file=None,
        app_env="production",
        database_url="postgresql://db/wa",
        redis_url="redis://cache:6379/0",
        whatsapp_access_token="t",
        whatsapp_phone_number_id="1",
        whatsapp_app_secret="s",
        whatsapp_verify_token="v",
        openrouter_api_key="k",
        jwt_secret="j",
        ray_auth_token="r",
    ).check_production()


def test_fallback_models_accept_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_PRIMARY_MODEL", "a/primary")
    monkeypatch.setenv("OPENROUTER_FALLBACK_MODEL", "b/one, c/two")
    assert Settings(_env_file=None).models == ["a/primary", "b/one", "c/two"]  # type: ignore[call-arg]


def test_secrets_are_not_shown_in_the_settings_repr() -> None:
    settings = Settings(_env_file=None, openrouter_api_key="sk-very-secret")  # type: ignore[call-arg]
    assert "sk-very-secret" not in repr(settings)


def test_env_example_documents_every_setting() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - documented == set()


def test_ray_cluster_yaml_passes_ray_up_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    assert config["provider"]["type"] == "local"
    assert "available_node_types" not in config
    validate_config(prepare_config(config))
