"""Turn a validated Cloud API webhook into records the store and the actors understand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from config.vocabulary import MEDIA_TYPES, MessageType, ProviderName
from gateway.whatsapp.models import Media, Message, MessagesValue, Status, WebhookPayload
from store.records import InboundMessage, StatusUpdate

PROVIDER = ProviderName.WHATSAPP_CLOUD


class PayloadError(ValueError):
    """The body is JSON but not a WhatsApp webhook we can store."""


@dataclass(slots=True)
class ParsedWebhook:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    ignored_changes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.messages and self.statuses:
            return "mixed"
        if self.messages:
            return "messages"
        if self.statuses:
            return "statuses"
        return "other"


def _timestamp(raw: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.now(tz=UTC)


def message_text(message: Message) -> str | None:
    """The human-readable text of a message, for history, search and the LLM."""
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
        names = [str(c.get("name", {}).get("formatted_name", "")) for c in message.contacts]
        return ", ".join(n for n in names if n) or None
    if kind == MessageType.ORDER and message.order is not None:
        return message.order.text or None
    if kind == MessageType.SYSTEM and message.system is not None:
        return message.system.body
    if kind == MessageType.EDIT and message.edit is not None and message.edit.message:
        inner: dict[str, Any] = message.edit.message
        body = inner.get("text", {}).get("body") if isinstance(inner.get("text"), dict) else None
        caption = (inner.get(str(inner.get("type")), {}) or {}).get("caption")
        edited = body or caption
        return str(edited) if edited else None
    return None


def _inbound(value: MessagesValue, message: Message) -> InboundMessage:
    names = {c.wa_id: c.profile.name for c in value.contacts if c.wa_id and c.profile}
    return InboundMessage(
        provider=PROVIDER,
        provider_message_id=message.id,
        business_number=value.metadata.phone_number_id,
        customer_phone=message.from_,
        type=message.type,
        text=message_text(message),
        payload=message.model_dump(mode="json", by_alias=True, exclude_none=True),
        timestamp=_timestamp(message.timestamp),
        customer_name=names.get(message.from_),
    )


def _status(status: Status) -> StatusUpdate:
    error = status.errors[0] if status.errors else None
    return StatusUpdate(
        provider_message_id=status.id,
        status=status.status,
        timestamp=_timestamp(status.timestamp),
        recipient=status.recipient_id,
        callback_data=status.biz_opaque_callback_data,
        error_code=error.code if error else None,
        error_title=(error.title or error.message) if error else None,
    )


def parse_webhook(body: Any) -> ParsedWebhook:
    """Validate a decoded JSON body; raise PayloadError with a readable reason."""
    try:
        payload = WebhookPayload.model_validate(body)
    except ValidationError as exc:
        raise PayloadError(_first_error(exc)) from exc
    if payload.object != "whatsapp_business_account":
        raise PayloadError(f"unexpected object {payload.object!r}")
    parsed = ParsedWebhook()
    for entry in payload.entry:
        for change in entry.changes:
            if change.field != "messages":
                parsed.ignored_changes.append(change.field)
                continue
            try:
                value = MessagesValue.model_validate(change.value)
            except ValidationError as exc:
                raise PayloadError(_first_error(exc)) from exc
            parsed.messages.extend(_inbound(value, m) for m in value.messages)
            parsed.statuses.extend(_status(s) for s in value.statuses)
    return parsed


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"
