"""The words the service stores and compares (message types, statuses, states, providers),
and the one definition of WhatsApp's 24-hour customer-service window.

StrEnums, so a member is equal to the string stored in Postgres and sent on the wire, and
a typo is a NameError instead of a silent mismatch.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class MessageType(StrEnum):
    """The `type` of a WhatsApp message (Cloud API webhook reference), inbound or outbound."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    ORDER = "order"
    REACTION = "reaction"
    EDIT = "edit"
    REVOKE = "revoke"
    SYSTEM = "system"
    REQUEST_WELCOME = "request_welcome"
    TEMPLATE = "template"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


# Messages whose content is a file Meta hosts and we may download.
MEDIA_TYPES = frozenset(
    {
        MessageType.IMAGE,
        MessageType.AUDIO,
        MessageType.VIDEO,
        MessageType.DOCUMENT,
        MessageType.STICKER,
    }
)


class MessageStatus(StrEnum):
    """Where a stored message is: an inbound one in the inbox, an outbound one in delivery."""

    RECEIVED = "received"
    PROCESSED = "processed"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    DEAD = "dead"  # an inbound message that failed every attempt (a dead letter)


class ConversationState(StrEnum):
    BOT = "bot"  # the bot answers
    HUMAN = "human"  # a person has it; the bot stays quiet
    CLOSED = "closed"  # a new customer message opens it again, with the bot


class ProviderName(StrEnum):
    """Who carried a message: the `provider` column and what health and `serve` report."""

    WHATSAPP_CLOUD = "whatsapp_cloud"
    MSG91 = "msg91"
    SANDBOX = "sandbox"


# WhatsApp's customer-service window: free-form messages may be sent only this long after
# the customer's last message; past it only a template (Meta error 131047).
SERVICE_WINDOW = timedelta(hours=24)


def window_open(last_customer_message_at: datetime | None, now: datetime) -> bool:
    return last_customer_message_at is not None and now - last_customer_message_at < SERVICE_WINDOW
