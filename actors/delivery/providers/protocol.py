"""What every delivery provider offers the delivery actor, and what it is asked to send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from actors.wire import Content
from config.vocabulary import ProviderName


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One reply to send; the provider turns `content` into its own wire format."""

    business_number: str
    to: str
    content: Content
    callback_data: str  # our outbound id, echoed back in status webhooks
    # The customer's message this reply quotes (Cloud API `context.message_id`).
    context_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A customer's media as downloaded: `content` is None when it is over the size cap."""

    content: bytes | None
    mime_type: str
    size: int


class Provider(Protocol):
    @property
    def name(self) -> ProviderName:
        """Who sends: the `provider` recorded with each reply."""

    async def send(self, message: OutboundMessage) -> str:
        """Send; return the provider's message id, or raise SendError."""

    async def mark_read(self, business_number: str, message_id: str) -> None:
        """Show the customer's message as read (blue ticks), where the provider can."""

    async def fetch_media(self, media_id: str, max_bytes: int) -> MediaFile | None:
        """Download a customer's media; None when this provider offers no download."""

    async def close(self) -> None: ...
