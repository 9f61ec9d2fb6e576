"""Turn a Cloud API webhook body into records the store and the actors understand.

Strict only about the envelope: a body with no `object` or `entry` is not a WhatsApp
webhook (PayloadError, 4xx). Inside it, be liberal (DESIGN.md §3): every change, message
and status is validated on its own, and one that fails is kept raw as unparsed, with its
error, while its siblings are stored as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from config.vocabulary import ProviderName
from gateway.whatsapp.fields import first_error, read_field
from gateway.whatsapp.models import Change, Contact, Message, MessagesValue, Status, WebhookPayload
from gateway.whatsapp.text import message_text, timestamp_of
from store.inbox import without_nul
from store.records import (
    AccountEvent,
    InboundMessage,
    PastMessage,
    StatusUpdate,
    UnparsedItem,
)

PROVIDER = ProviderName.WHATSAPP_CLOUD
MESSAGES = "messages"
_KIND_LIMIT = 100

__all__ = ["ParsedWebhook", "PayloadError", "message_text", "parse_webhook"]


class PayloadError(ValueError):
    """The body is JSON but not a WhatsApp webhook we can store."""


@dataclass(slots=True)
class ParsedWebhook:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    past: list[PastMessage] = field(default_factory=list)
    account_events: list[AccountEvent] = field(default_factory=list)
    unparsed: list[UnparsedItem] = field(default_factory=list)
    # The field of every change, in order (the webhook log's "kind").
    fields: list[str] = field(default_factory=list)
    # Meta's value-level errors (no message attached), as "code: title".
    errors: list[str] = field(default_factory=list)
    # Set by the store when Postgres refused this delivery's rows: they were kept raw.
    refused: str | None = None

    @property
    def ignored_changes(self) -> list[str]:
        return [f for f in self.fields if f != MESSAGES]

    @property
    def kind(self) -> str:
        if self.messages and self.statuses:
            kind = "mixed"
        elif self.messages:
            kind = "messages"
        elif self.statuses:
            kind = "statuses"
        else:
            kind = ""
        others = [f for f in dict.fromkeys(self.fields) if f != MESSAGES]
        return ",".join(p for p in (kind, *others) if p)[:_KIND_LIMIT] or "other"


def parse_webhook(body: Any, raw: bytes | None = None) -> ParsedWebhook:
    """Validate a decoded JSON body; raise PayloadError only for a body that is not one."""
    # JSON escapes NUL as \u0000, so a body without that sequence needs no walk.
    if raw is None or b"\\u0000" in raw:
        body = without_nul(body)
    _refuse_deep(body, raw)
    try:
        payload = WebhookPayload.model_validate(body)
    except ValidationError as exc:
        raise PayloadError(first_error(exc)) from exc
    if payload.object != "whatsapp_business_account":
        raise PayloadError(f"unexpected object {payload.object!r}")
    parsed = ParsedWebhook()
    for entry in payload.entry:
        account_id = _account_id(entry)
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            parsed.unparsed.append(_unparsed("entry", "entry has no list of changes", entry))
            continue
        for raw_change in changes:
            try:
                change = Change.model_validate(raw_change)
            except ValidationError as exc:
                parsed.unparsed.append(_unparsed("change", first_error(exc), raw_change))
                continue
            parsed.fields.append(change.field)
            if change.field == MESSAGES:
                _read_messages(change.value, parsed)
                continue
            result = read_field(change.field, account_id, change.value)
            parsed.account_events.extend(result.events)
            parsed.past.extend(result.past)
            parsed.unparsed.extend(result.unparsed)
    return parsed


# orjson writes at most 254 levels; every part we keep is written back as JSON. Meta's
# bodies nest about ten deep.
_MAX_BRACKETS_UNCHECKED = 250


def _refuse_deep(body: Any, raw: bytes | None) -> None:
    """A body nested too deeply to store is no WhatsApp webhook (a 4xx, never a 5xx).

    Counting brackets is C-speed; only a body with that many is serialised to check.
    """
    if raw is not None and raw.count(b"[") + raw.count(b"{") <= _MAX_BRACKETS_UNCHECKED:
        return
    try:
        orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise PayloadError(f"nested too deeply to store: {exc}") from exc


def _account_id(entry: Any) -> str | None:
    value = entry.get("id") if isinstance(entry, dict) else None
    return str(value)[:64] if isinstance(value, str | int) else None


def _read_messages(raw: dict[str, Any], parsed: ParsedWebhook) -> None:
    try:
        value = MessagesValue.model_validate(raw)
    except ValidationError as exc:
        parsed.unparsed.append(_unparsed(MESSAGES, first_error(exc), raw))
        return
    business = value.metadata.phone_number_id
    parsed.errors.extend(f"{e.code}: {e.title or e.message or ''}" for e in value.errors)
    names = _names(raw.get("contacts"))
    for item, message in _valid(Message, _items(raw, "messages", parsed), "message", parsed):
        sender = message.sender
        if sender is None:
            parsed.unparsed.append(
                _unparsed("messages.message", "no sender: neither from nor user_id", item)
            )
            continue
        parsed.messages.append(
            InboundMessage(
                provider=PROVIDER,
                provider_message_id=message.id,
                business_number=business,
                customer_phone=sender,
                type=message.type,
                text=message_text(message),
                # As Meta sent it: nothing is dropped, and no second serialisation.
                payload=item,
                timestamp=timestamp_of(message.timestamp),
                customer_name=names.get(sender),
            )
        )
    for _, status in _valid(Status, _items(raw, "statuses", parsed), "status", parsed):
        parsed.statuses.append(_status(status))


_M = TypeVar("_M", bound=BaseModel)


def _valid(
    model: type[_M], items: list[Any], what: str, parsed: ParsedWebhook
) -> Iterator[tuple[Any, _M]]:
    """Each item with its model; one that fails is kept as unparsed, and the rest go on."""
    for item in items:
        try:
            yield item, model.model_validate(item)
        except ValidationError as exc:
            parsed.unparsed.append(_unparsed(f"messages.{what}", first_error(exc), item))


def _items(raw: dict[str, Any], key: str, parsed: ParsedWebhook) -> list[Any]:
    items = raw.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        parsed.unparsed.append(_unparsed(f"messages.{key}", f"{key} is not a list", items))
        return []
    return items


def _names(contacts: Any) -> dict[str, str]:
    """Profile names by every identity a contact carries (phone and user ids)."""
    names: dict[str, str] = {}
    if not isinstance(contacts, list):
        return names
    for raw in contacts:
        try:
            contact = Contact.model_validate(raw)
        except ValidationError:
            continue  # an unreadable name is no reason to lose the message
        name = contact.profile.name if contact.profile is not None else None
        if name:
            for identity in (contact.wa_id, contact.user_id, contact.parent_user_id):
                if identity:
                    names[identity] = name
    return names


def _status(status: Status) -> StatusUpdate:
    error = status.errors[0] if status.errors else None
    return StatusUpdate(
        provider_message_id=status.id,
        status=status.status,
        timestamp=timestamp_of(status.timestamp),
        recipient=status.recipient_id or status.recipient_user_id,
        callback_data=status.biz_opaque_callback_data,
        error_code=error.code if error else None,
        error_title=(error.title or error.message) if error else None,
    )


def _unparsed(where: str, error: str, raw: Any) -> UnparsedItem:
    return UnparsedItem(PROVIDER, where, error[:500], orjson.dumps(raw).decode())
