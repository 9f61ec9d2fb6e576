"""The one place that picks the delivery provider from configuration."""

from __future__ import annotations

from actors.delivery.providers.cloud_api import CloudApiProvider
from actors.delivery.providers.msg91 import Msg91Provider
from actors.delivery.providers.protocol import Provider
from actors.delivery.providers.sandbox import SandboxProvider
from actors.http import HttpPool
from config import Settings
from config.vocabulary import ProviderName


def make_provider(
    settings: Settings,
    *,
    sandbox_base_url: str | None = None,
) -> Provider:
    """The provider `settings.delivery_provider` names, with its own HTTP client."""
    pool = HttpPool.for_delivery(settings)
    timeout = settings.delivery_timeout_seconds
    match settings.delivery_provider:
        case ProviderName.MSG91:
            assert settings.msg91_auth_key is not None and settings.msg91_sender_id is not None
            return Msg91Provider(
                base_url=settings.msg91_base_url,
                auth_key=settings.msg91_auth_key.get_secret_value(),
                integrated_number=settings.msg91_sender_id,
                timeout=timeout,
                pool=pool,
            )
        case ProviderName.SANDBOX:
            if sandbox_base_url is None:
                raise ValueError("sandbox delivery needs the sandbox Graph API address")
            return SandboxProvider(
                base_url=sandbox_base_url,
                api_version=settings.whatsapp_api_version,
                timeout=timeout,
                pool=pool,
            )
        case ProviderName.WHATSAPP_CLOUD:
            assert settings.whatsapp_access_token is not None
            return CloudApiProvider(
                base_url=settings.whatsapp_graph_base_url,
                api_version=settings.whatsapp_api_version,
                access_token=settings.whatsapp_access_token.get_secret_value(),
                timeout=timeout,
                pool=pool,
            )
