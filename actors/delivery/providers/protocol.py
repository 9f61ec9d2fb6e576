"""What every delivery provider offers the delivery actor, and what it is asked to send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TextMessage:
    """One reply to send: plain text, or richer content (buttons, list, template)."""

    business_number: str
    to: str
    text: str
    callback_data: str
    content: dict[str, Any] | None = None  # Content.to_payload(); None means plain text
    # The customer's message this reply quotes (Cloud API `context.message_id`).
    context_message_id: str | None = None


class Provider(Protocol):
    async def send_text(self, message: TextMessage) -> str:
        """Send; return the provider's message id, or raise SendError."""

    async def mark_read(self, business_number: str, message_id: str) -> None:
        """Show the customer's message as read (blue ticks), where the provider can."""

    async def close(self) -> None: ...
