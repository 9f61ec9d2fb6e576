"""The sandbox provider: the Cloud API client pointed at the local Graph API fake.

With no WhatsApp credentials the service still sends, to a fake that records each
message so the dashboard and `/sandbox/_fake/messages` show what would have gone out.
It speaks the Cloud API's wire format (the fake echoes our callback data as Meta does),
and reports itself as `sandbox`.
"""

from __future__ import annotations

from actors.delivery.providers.cloud_api import CloudApiProvider
from actors.http import DEFAULT_POOL, HttpPool
from config.vocabulary import ProviderName

SANDBOX_TOKEN = "sandbox-token"


class SandboxProvider(CloudApiProvider):
    name: ProviderName = ProviderName.SANDBOX

    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        timeout: float = 15.0,
        pool: HttpPool = DEFAULT_POOL,
    ) -> None:
        super().__init__(
            base_url=base_url,
            api_version=api_version,
            access_token=SANDBOX_TOKEN,
            timeout=timeout,
            pool=pool,
        )
