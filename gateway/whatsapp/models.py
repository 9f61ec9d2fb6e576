"""Typed models of the WhatsApp Cloud API webhook body.

Mirrors https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
and the `messages` webhook reference. Models are permissive (`extra="allow"`): Meta adds
fields without notice, and an unknown field or message type must be stored, not refused
(DESIGN.md §1). Only the envelope and the fields we act on are required.

Each message and status is validated on its own (gateway.whatsapp.normalize), so a bad
one is kept raw as `unparsed` and never costs its siblings. The limits below are the
edge's cleaning (issue 11 §3.8): a value Postgres would refuse inside the group commit
(an index row over its size limit, an error code over 2^31) is refused or dropped here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

# Meta's ids are tens of characters; these bounds only keep hostile values out of the
# unique indexes (a btree entry is at most about 2.7 kB).
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Identity = Annotated[str, StringConstraints(max_length=128)]
# Meta caps biz_opaque_callback_data at 512 characters (Send messages reference).
MAX_CALLBACK_DATA = 512
_INT32 = 2**31


def _error_code(value: Any) -> int | None:
    """Meta's error codes fit 32 bits; anything else is kept only in the raw payload."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().lstrip("-").isdigit():
        value = int(value) if len(value) < 20 else None
    if isinstance(value, int) and -_INT32 <= value < _INT32:
        return value
    return None


def _callback_data(value: Any) -> str | None:
    # Longer than Meta allows, or not text at all: it cannot be one we sent.
    if isinstance(value, str) and len(value) <= MAX_CALLBACK_DATA:
        return value
    return None


def _short_text(limit: int) -> BeforeValidator:
    return BeforeValidator(lambda v: v[:limit] if isinstance(v, str) else v)


def _message_type(value: Any) -> Any:
    # A type we cannot store sensibly is still a message: it is answered as unknown.
    if value is None or (isinstance(value, str) and (not value or len(value) > 64)):
        return "unknown"
    return value


class _Model(BaseModel):
    # Meta sends some numbers as strings and some strings as numbers (timestamps, ids,
    # coordinates): take both, as its own examples do.
    model_config = ConfigDict(
        extra="allow", frozen=True, populate_by_name=True, coerce_numbers_to_str=True
    )


class Profile(_Model):
    name: Annotated[str | None, _short_text(256)] = None
    username: Annotated[str | None, _short_text(256)] = None


class Contact(_Model):
    """A sender's identity: a phone (`wa_id`), a business-scoped user id, or both.

    https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/
    """

    wa_id: Identity | None = None
    user_id: Identity | None = None
    parent_user_id: Identity | None = None
    profile: Profile | None = None


class Metadata(_Model):
    display_phone_number: str | None = None
    phone_number_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Text(_Model):
    body: str = ""


class Media(_Model):
    """image, video, audio (voice too), document and sticker share this shape."""

    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    url: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class Location(_Model):
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    url: str | None = None


class Reaction(_Model):
    message_id: str | None = None
    emoji: str | None = None


class ReplyChoice(_Model):
    id: str
    title: str | None = None
    description: str | None = None


class Interactive(_Model):
    type: str | None = None
    button_reply: ReplyChoice | None = None
    list_reply: ReplyChoice | None = None


class Button(_Model):
    """A template's quick-reply button press."""

    payload: str | None = None
    text: str | None = None


class Order(_Model):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[dict[str, Any]] = Field(default_factory=list)


class System(_Model):
    body: str | None = None
    type: str | None = None
    wa_id: str | None = None


class OriginalRef(_Model):
    """`revoke` and `edit` point at the message they change."""

    original_message_id: str | None = None
    message: dict[str, Any] | None = None


class Context(_Model):
    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None


class ErrorDetail(_Model):
    code: Annotated[int | None, BeforeValidator(_error_code)] = None
    title: Annotated[str | None, _short_text(1000)] = None
    message: Annotated[str | None, _short_text(1000)] = None


class Message(_Model):
    # With a WhatsApp username the phone may be missing or empty: then `user_id` (a
    # business-scoped user id) or `parent_user_id` names the sender.
    from_: Identity | None = Field(default=None, alias="from")
    user_id: Identity | None = None
    parent_user_id: Identity | None = None
    id: MessageId
    timestamp: str | None = None
    type: Annotated[str, BeforeValidator(_message_type)] = "unknown"
    context: Context | None = None
    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: list[dict[str, Any]] | None = None
    reaction: Reaction | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    order: Order | None = None
    system: System | None = None
    revoke: OriginalRef | None = None
    edit: OriginalRef | None = None
    errors: list[ErrorDetail] | None = None

    @property
    def sender(self) -> str | None:
        """Whichever identity Meta gives: the phone, else the business-scoped user id."""
        return self.from_ or self.user_id or self.parent_user_id or None


class Status(_Model):
    # Not always a wamid: the Graph API's ids for other sends look different.
    id: MessageId
    status: Annotated[str, StringConstraints(max_length=64)]
    timestamp: str | None = None
    recipient_id: Identity | None = None
    recipient_user_id: Identity | None = None
    biz_opaque_callback_data: Annotated[str | None, BeforeValidator(_callback_data)] = None
    errors: list[ErrorDetail] | None = None


class MessagesValue(_Model):
    """The envelope of a `messages` change; its lists are validated item by item."""

    messaging_product: str | None = None
    metadata: Metadata
    errors: list[ErrorDetail] = Field(default_factory=list)


class Change(_Model):
    field: Annotated[str, StringConstraints(max_length=100)]
    # Other fields (account_update, message_template_status_update, ...) have other shapes;
    # each is parsed by its own reader in gateway.whatsapp.fields.
    value: dict[str, Any] = Field(default_factory=dict)


class Entry(_Model):
    id: str | None = None
    # Raw: a bad change is kept as unparsed, not a reason to refuse the entry.
    changes: list[Any] = Field(default_factory=list)


class WebhookPayload(_Model):
    """The envelope. Anything that fails here is not a WhatsApp webhook at all (4xx)."""

    object: str
    entry: list[Any]
