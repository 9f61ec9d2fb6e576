"""Ray's authentication in production: token mode with the token from the environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from actors.runtime import init_ray
from config import ProductionConfigError, Settings
from tests.test_cli import CLI, _clean_env, _free_port

PRODUCTION: dict[str, Any] = {
    "app_env": "production",
    "database_url": "postgresql://db/wa",
    "redis_url": "redis://cache:6379/0",
    "whatsapp_access_token": "t",
    "whatsapp_phone_number_id": "1",
    "whatsapp_app_secret": "s",
    "whatsapp_verify_token": "v",
    "openrouter_api_key": "k",
    "jwt_secret": "j",
}


@pytest.fixture(autouse=True)
def no_ray_auth_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The session's own Ray exported RAY_AUTH_MODE=disabled; these tests set their own.
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)


def _production(**extra: Any) -> Settings:
    return Settings(_env_file=None, **PRODUCTION, **extra)  # type: ignore[call-arg]


def test_production_without_a_ray_token_refuses_and_says_how_to_give_one() -> None:
    settings = _production()
    assert settings.effective_ray_auth_mode == "token"
    with pytest.raises(ProductionConfigError) as refused:
        settings.check_production()
    message = str(refused.value)
    assert "RAY_AUTH_MODE=token, the default in production" in message
    assert "RAY_AUTH_TOKEN" in message and "RAY_AUTH_TOKEN_PATH" in message
    assert "RAY_AUTH_MODE=disabled" in message


def test_production_with_a_token_or_a_token_file_runs_ray_in_token_mode(tmp_path: Path) -> None:
    for settings in (
        _production(ray_auth_token="cluster-token"),
        _production(ray_auth_token_path=tmp_path / "token"),
        _production(ray_auth_mode="token", ray_auth_token="cluster-token"),
    ):
        settings.check_production()
        assert settings.effective_ray_auth_mode == "token"


def test_disabled_is_accepted_in_production_only_when_set_explicitly() -> None:
    settings = _production(ray_auth_mode="disabled")
    settings.check_production()
    assert settings.effective_ray_auth_mode == "disabled"


def test_development_keeps_ray_auth_disabled_unless_asked() -> None:
    assert Settings(_env_file=None).effective_ray_auth_mode == "disabled"  # type: ignore[call-arg]
    dev_token = Settings(_env_file=None, ray_auth_mode="token")  # type: ignore[call-arg]
    assert dev_token.ray_auth_problem() is None  # a local Ray makes its own token


def test_init_ray_refuses_production_without_a_token_before_touching_ray() -> None:
    with pytest.raises(ProductionConfigError, match="RAY_AUTH_TOKEN"):
        init_ray(_production())
    assert "RAY_AUTH_MODE" not in os.environ


def test_serve_in_production_without_a_ray_token_exits_2_with_the_reason(tmp_path: Path) -> None:
    env = _clean_env(tmp_path, _free_port())
    env.update({k.upper(): v for k, v in PRODUCTION.items()})
    result = subprocess.run(
        [str(CLI), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "RAY_AUTH_MODE=token, the default in production" in result.stderr
    assert "Traceback" not in result.stderr
