"""Plain records that cross layers: what the gateway stores and what the actors process.

They are frozen dataclasses so they pickle cheaply across the Ray boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from config.vocabulary import ProviderName

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One customer message as parsed from a provider webhook, before it is stored."""

    provider: str
    provider_message_id: str
    business_number: str
    customer_phone: str
    type: str
    text: str | None
    payload: dict[str, Any]
    timestamp: datetime
    customer_name: str | None = None
    request_id: str | None = None  # of the webhook delivery, for following it in the logs


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery status for one of our outbound messages (sent, delivered, read, failed)."""

    provider_message_id: str
    status: str
    timestamp: datetime
    recipient: str | None = None
    callback_data: str | None = None
    error_code: int | None = None
    error_title: str | None = None


@dataclass(frozen=True, slots=True)
class PastMessage:
    """A message that already happened: `history` sync or an `smb_message_echoes` echo.

    Stored as processed, in the direction it went, and never answered (issue 11 §1).
    """

    provider: str
    provider_message_id: str
    business_number: str
    customer_phone: str
    direction: Literal["inbound", "outbound"]
    type: str
    text: str | None
    payload: dict[str, Any]
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class UnparsedItem:
    """A part of a webhook body that failed validation: kept raw, with its error."""

    source: str
    field: str  # the change's field, or "messages.messages" / "messages.statuses" for items
    error: str
    raw: str  # the part as JSON text (always storable: JSON escapes control characters)


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """A non-message field an operator should see: template status or quality, account
    and number quality, a customer's marketing preference."""

    field: str
    account_id: str | None
    subject: str | None  # the template, number or customer it is about
    event: str | None  # APPROVED, YELLOW, FLAGGED, stop, ...
    detail: dict[str, Any]
    digest: str  # of the raw change: Meta's retries of it are stored once


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A stored, not yet processed inbound message: the unit the shards work on."""

    message_id: int
    conversation_id: int
    business_number: str
    customer_phone: str
    type: str
    text: str | None
    provider_message_id: str
    provider: str = ProviderName.WHATSAPP_CLOUD
    # The message as the provider sent it: reaction targets, button ids, media ids live here.
    payload: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class OutboundRow:
    id: int
    conversation_id: int
    reply_to_id: int | None
    text: str | None
    status: str
    provider_message_id: str | None
    # Buttons, list or template (actors.wire payload); None for plain text.
    content: dict[str, Any] | None = None


@dataclass(slots=True)
class WebhookEvent:
    """One webhook delivery for the operators' log; holds no secrets and no message text."""

    source: str
    kind: str
    outcome: str
    http_status: int
    latency_ms: float | None = None
    message_count: int = 0
    status_count: int = 0
    detail: str | None = None


@dataclass(slots=True)
class ConversationSnapshot:
    """A virtual conversation actor's state, as cached in Redis between activations."""

    conversation_id: int
    business_number: str
    customer_phone: str
    history: list[Turn] = field(default_factory=list)
    last_message_id: int = 0
