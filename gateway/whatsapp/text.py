"""What a message says, in words, and when it was sent: for history, search and the LLM.

Nested parts we do not model (contacts, an edit's new message) arrive as plain JSON, so
every step checks its shape: a body of odd shapes yields no text, never an exception.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from config.vocabulary import MEDIA_TYPES, MessageType
from gateway.whatsapp.models import Media, Message


def timestamp_of(raw: str | None) -> datetime:
    try:
        return datetime.fromtimestamp(int(raw or ""), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)


def message_text(message: Message) -> str | None:
    kind = message.type
    if message.text is not None:
        return message.text.body
    if kind == MessageType.INTERACTIVE and message.interactive is not None:
        choice = message.interactive.button_reply or message.interactive.list_reply
        return choice.title if choice is not None else None
    if kind == MessageType.BUTTON and message.button is not None:
        return message.button.text
    media: Media | None = getattr(message, kind, None) if kind in MEDIA_TYPES else None
    if media is not None:
        return media.caption
    if kind == MessageType.LOCATION and message.location is not None:
        loc = message.location
        label = ", ".join(p for p in (loc.name, loc.address) if p)
        return label or f"{loc.latitude},{loc.longitude}"
    if kind == MessageType.REACTION and message.reaction is not None:
        return message.reaction.emoji or None
    if kind == MessageType.CONTACTS and message.contacts:
        names = [str(_get(c, "name", "formatted_name") or "") for c in message.contacts]
        return ", ".join(n for n in names if n) or None
    if kind == MessageType.ORDER and message.order is not None:
        return message.order.text or None
    if kind == MessageType.SYSTEM and message.system is not None:
        return message.system.body
    if kind == MessageType.EDIT and message.edit is not None and message.edit.message:
        inner: dict[str, Any] = message.edit.message
        edited = _get(inner, "text", "body") or _get(inner, str(inner.get("type")), "caption")
        return str(edited) if edited else None
    return None


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
