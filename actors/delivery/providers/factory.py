"""The one place that picks the delivery provider from configuration."""

from __future__ import annotations

from actors.delivery.providers.cloud_api import CloudApiProvider
from actors.delivery.providers.msg91 import Msg91Provider
from actors.delivery.providers.protocol import Provider
from actors.delivery.providers.sandbox import SANDBOX_TOKEN
from config import Settings


def make_provider(settings: Settings, *, sandbox_base_url: str | None = None) -> Provider:
    if settings.uses_msg91:
        assert settings.msg91_auth_key is not None and settings.msg91_sender_id is not None
        return Msg91Provider(
            base_url=settings.msg91_base_url,
            auth_key=settings.msg91_auth_key.get_secret_value(),
            integrated_number=settings.msg91_sender_id,
            timeout=settings.delivery_timeout_seconds,
        )
    if settings.uses_sandbox_delivery:
        if sandbox_base_url is None:
            raise ValueError("sandbox delivery needs the sandbox Graph API address")
        return CloudApiProvider(
            base_url=sandbox_base_url,
            api_version=settings.whatsapp_api_version,
            access_token=SANDBOX_TOKEN,
            timeout=settings.delivery_timeout_seconds,
        )
    assert settings.whatsapp_access_token is not None
    return CloudApiProvider(
        base_url=settings.whatsapp_graph_base_url,
        api_version=settings.whatsapp_api_version,
        access_token=settings.whatsapp_access_token.get_secret_value(),
        timeout=settings.delivery_timeout_seconds,
    )
