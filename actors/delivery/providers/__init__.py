"""Delivery providers behind one interface: Meta's Cloud API, MSG91 and the sandbox."""

from actors.delivery.providers.cloud_api import CloudApiProvider
from actors.delivery.providers.errors import SendError
from actors.delivery.providers.factory import make_provider
from actors.delivery.providers.msg91 import Msg91Provider
from actors.delivery.providers.protocol import MediaFile, OutboundMessage, Provider
from actors.delivery.providers.sandbox import SANDBOX_TOKEN, SandboxProvider

__all__ = [
    "SANDBOX_TOKEN",
    "CloudApiProvider",
    "MediaFile",
    "Msg91Provider",
    "OutboundMessage",
    "Provider",
    "SandboxProvider",
    "SendError",
    "make_provider",
]
