"""Typed models of the WhatsApp Cloud API webhook body.

Mirrors https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
and the `messages` webhook reference. Models are permissive (`extra="allow"`): Meta adds
fields without notice, and an unknown field or message type must be stored, not refused
(DESIGN.md §1). Only the envelope and the fields we act on are required.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    # Meta sends some numbers as strings and some strings as numbers (timestamps, ids,
    # coordinates): take both, as its own examples do.
    model_config = ConfigDict(
        extra="allow", frozen=True, populate_by_name=True, coerce_numbers_to_str=True
    )


class Profile(_Model):
    name: str | None = None


class Contact(_Model):
    wa_id: str | None = None
    profile: Profile | None = None


class Metadata(_Model):
    display_phone_number: str | None = None
    phone_number_id: str


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
    code: int | None = None
    title: str | None = None
    message: str | None = None


class Message(_Model):
    from_: str = Field(alias="from")
    id: str
    timestamp: str
    type: str = "unknown"
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


class Status(_Model):
    id: str
    status: str
    timestamp: str
    recipient_id: str | None = None
    biz_opaque_callback_data: str | None = None
    errors: list[ErrorDetail] | None = None


class MessagesValue(_Model):
    """The `value` of a change whose `field` is `messages`."""

    messaging_product: str | None = None
    metadata: Metadata
    contacts: list[Contact] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    statuses: list[Status] = Field(default_factory=list)
    errors: list[ErrorDetail] = Field(default_factory=list)


class Change(_Model):
    field: str
    # Other fields (account_update, message_template_status_update, ...) have other shapes;
    # only `messages` is parsed further, the rest is logged as received.
    value: dict[str, Any]


class Entry(_Model):
    id: str
    changes: list[Change] = Field(default_factory=list)


class WebhookPayload(_Model):
    object: str
    entry: list[Entry]
