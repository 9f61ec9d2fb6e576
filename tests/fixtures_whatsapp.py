"""Our own WhatsApp Cloud API inbound updates, one builder per update type.

Every builder takes the customer's phone and returns the `message` object of a `messages`
webhook (wrap it with `tests.support.envelope`). Shapes follow Meta's webhook reference;
the values (ids, numbers, names, texts) are made up for these tests.

`UPDATE_CASES` is the table the parsing tests run over: for each update, the `type` and
`text` the inbox must store and the kind of reply the customer must get.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tests.support import DISPLAY_NUMBER, message, new_wamid

Builder = Callable[[str], dict[str, Any]]
ReplyKind = Literal["llm", "canned", "none"]

# -- texts the table expects back ---------------------------------------------------------

TEXT = "Hello, is order 4711 on its way?"
REPLY_TEXT = "Yes, the blue kettle please"
FORWARDED_TEXT = "My neighbour says you repair toasters too?"
REFERRAL_TEXT = "I saw your ad, do you ship to Austria?"
IMAGE_CAPTION = "Is this the right charger for my model?"
DOCUMENT_CAPTION = "Invoice for the broken kettle"
DOCUMENT_FILENAME = "invoice-2024-0815.pdf"
NAMED_PLACE = "Riverside Depot"
NAMED_ADDRESS = "12 Quay Street, Dublin"
CURRENT_LAT, CURRENT_LON = 48.2082, 16.3738
CONTACT_NAMES = ("Grace Hopper", "Linus")
BUTTON_TITLE = "Track my parcel"
LIST_TITLE = "Returns and refunds"
QUICK_REPLY_TEXT = "Reschedule delivery"
ORDER_NOTE = "Please leave it with the concierge"
REACTION_EMOJI = "\N{THUMBS UP SIGN}"
OLD_NUMBER_BODY = "Customer changed their number"
IDENTITY_BODY = "Customer identity changed"
EDITED_CAPTION = "Sorry, this is the right photo of the receipt"


def _media_id() -> str:
    return str(random.randint(10**15, 10**16 - 1))


def _sha256() -> str:
    return "".join(random.choices("ABCDEFGHIJKLMNOPabcdefghijklmnop0123456789+/", k=43)) + "="


def _media(mime_type: str, **fields: Any) -> dict[str, Any]:
    return {"mime_type": mime_type, "sha256": _sha256(), "id": _media_id(), **fields}


# -- text ---------------------------------------------------------------------------------


def text(phone: str) -> dict[str, Any]:
    return message(phone, "text", text={"body": TEXT})


def text_reply(phone: str) -> dict[str, Any]:
    """A text that quotes one of our messages (swipe-to-reply)."""
    return message(
        phone,
        "text",
        context={"from": DISPLAY_NUMBER, "id": new_wamid()},
        text={"body": REPLY_TEXT},
    )


def forwarded_text(phone: str) -> dict[str, Any]:
    return message(phone, "text", context={"forwarded": True}, text={"body": FORWARDED_TEXT})


def text_with_referral(phone: str) -> dict[str, Any]:
    """The first text after tapping a click-to-WhatsApp ad."""
    return message(
        phone,
        "text",
        referral={
            "source_url": "https://fb.me/kettle-spring-sale",
            "source_id": "120210000000004711",
            "source_type": "ad",
            "headline": "Spring sale on kettles",
            "body": "20% off every kettle this week",
            "media_type": "image",
            "image_url": "https://cdn.example.com/ads/kettle.jpg",
            "thumbnail_url": "https://cdn.example.com/ads/kettle-thumb.jpg",
            "ctwa_clid": "ctwa-test-clid-0001",
        },
        text={"body": REFERRAL_TEXT},
    )


# -- media --------------------------------------------------------------------------------


def image(phone: str) -> dict[str, Any]:
    return message(phone, "image", image=_media("image/jpeg"))


def image_with_caption(phone: str) -> dict[str, Any]:
    return message(phone, "image", image=_media("image/jpeg", caption=IMAGE_CAPTION))


def video(phone: str) -> dict[str, Any]:
    return message(phone, "video", context={"forwarded": True}, video=_media("video/mp4"))


def document(phone: str) -> dict[str, Any]:
    return message(
        phone,
        "document",
        document=_media("application/pdf", caption=DOCUMENT_CAPTION, filename=DOCUMENT_FILENAME),
    )


def audio(phone: str) -> dict[str, Any]:
    return message(phone, "audio", audio=_media("audio/mpeg", voice=False))


def voice(phone: str) -> dict[str, Any]:
    return message(phone, "audio", audio=_media("audio/ogg; codecs=opus", voice=True))


def static_sticker(phone: str) -> dict[str, Any]:
    return message(phone, "sticker", sticker=_media("image/webp", animated=False))


def animated_sticker(phone: str) -> dict[str, Any]:
    return message(phone, "sticker", sticker=_media("image/webp", animated=True))


# -- reactions ----------------------------------------------------------------------------


def reaction(phone: str) -> dict[str, Any]:
    return message(phone, "reaction", reaction={"message_id": new_wamid(), "emoji": REACTION_EMOJI})


def unreaction(phone: str) -> dict[str, Any]:
    """Removing a reaction: Meta sends the same update with an empty emoji."""
    return message(phone, "reaction", reaction={"message_id": new_wamid(), "emoji": ""})


# -- location and contacts ----------------------------------------------------------------


def current_location(phone: str) -> dict[str, Any]:
    return message(phone, "location", location={"latitude": CURRENT_LAT, "longitude": CURRENT_LON})


def named_location(phone: str) -> dict[str, Any]:
    return message(
        phone,
        "location",
        location={
            "latitude": 53.3458,
            "longitude": -6.2575,
            "name": NAMED_PLACE,
            "address": NAMED_ADDRESS,
            "url": "https://maps.example.com/?place=riverside-depot",
        },
    )


def contacts(phone: str) -> dict[str, Any]:
    first, second = CONTACT_NAMES
    return message(
        phone,
        "contacts",
        contacts=[
            {
                "name": {"first_name": "Grace", "last_name": "Hopper", "formatted_name": first},
                "phones": [{"phone": "+44 20 7946 0011", "wa_id": "442079460011", "type": "CELL"}],
                "emails": [{"email": "grace@example.com", "type": "WORK"}],
            },
            {
                "name": {"first_name": "Linus", "formatted_name": second},
                "phones": [{"phone": "+358 40 123 4567", "type": "HOME"}],
            },
        ],
    )


# -- choices ------------------------------------------------------------------------------


def button_reply(phone: str) -> dict[str, Any]:
    """A tap on a reply button of one of our interactive messages."""
    return message(
        phone,
        "interactive",
        context={"from": DISPLAY_NUMBER, "id": new_wamid()},
        interactive={
            "type": "button_reply",
            "button_reply": {"id": "track-parcel", "title": BUTTON_TITLE},
        },
    )


def list_reply(phone: str) -> dict[str, Any]:
    return message(
        phone,
        "interactive",
        context={"from": DISPLAY_NUMBER, "id": new_wamid()},
        interactive={
            "type": "list_reply",
            "list_reply": {
                "id": "topic-returns",
                "title": LIST_TITLE,
                "description": "Send something back",
            },
        },
    )


def quick_reply(phone: str) -> dict[str, Any]:
    """A template's quick-reply button: type `button`, quoting the template."""
    return message(
        phone,
        "button",
        context={"from": DISPLAY_NUMBER, "id": new_wamid()},
        button={"payload": "reschedule-delivery", "text": QUICK_REPLY_TEXT},
    )


def quick_reply_without_context(phone: str) -> dict[str, Any]:
    return message(
        phone, "button", button={"payload": "reschedule-delivery", "text": QUICK_REPLY_TEXT}
    )


def order(phone: str) -> dict[str, Any]:
    return message(
        phone,
        "order",
        order={
            "catalog_id": "770000000000123",
            "text": ORDER_NOTE,
            "product_items": [
                {
                    "product_retailer_id": "KETTLE-BLUE",
                    "quantity": 1,
                    "item_price": 49.9,
                    "currency": "EUR",
                },
                {
                    "product_retailer_id": "DESCALER",
                    "quantity": 3,
                    "item_price": 4.5,
                    "currency": "EUR",
                },
            ],
        },
    )


# -- what Meta cannot show us -------------------------------------------------------------


def _unknown_type_error() -> dict[str, Any]:
    return {
        "code": 131051,
        "title": "Message type unknown",
        "message": "Message type unknown",
        "error_data": {"details": "This message type is not supported yet."},
    }


def unsupported(phone: str) -> dict[str, Any]:
    return message(
        phone, "unsupported", errors=[_unknown_type_error()], unsupported={"type": "event"}
    )


def interactive_with_errors(phone: str) -> dict[str, Any]:
    """An interactive update with an error and no `interactive` body at all."""
    return message(
        phone,
        "interactive",
        context={"from": DISPLAY_NUMBER, "id": new_wamid()},
        errors=[_unknown_type_error()],
    )


def unknown_future_type(phone: str) -> dict[str, Any]:
    """A type Meta might add tomorrow: stored as it came, answered politely."""
    return message(
        phone,
        "poll_vote",
        poll_vote={
            "poll_id": new_wamid(),
            "selected_options": [{"id": "slot-tue", "name": "Tuesday morning"}],
            "voted_at": str(int(time.time())),
        },
    )


# -- system notices, edits and revokes ----------------------------------------------------


def user_changed_number(phone: str) -> dict[str, Any]:
    return message(
        phone,
        "system",
        system={"body": OLD_NUMBER_BODY, "wa_id": "4915112345678", "type": "user_changed_number"},
    )


def customer_identity_changed(phone: str) -> dict[str, Any]:
    return message(
        phone,
        "system",
        identity={
            "acknowledged": True,
            "created_timestamp": str(int(time.time())),
            "hash": "id-hash-test-0001",
        },
        system={"body": IDENTITY_BODY, "type": "customer_identity_changed"},
    )


def edit_of_image(phone: str) -> dict[str, Any]:
    """The customer edited the caption of an image they sent earlier."""
    return message(
        phone,
        "edit",
        edit={
            "original_message_id": new_wamid(),
            "message": {
                "context": {"id": "M0"},
                "type": "image",
                "image": _media(
                    "image/jpeg",
                    caption=EDITED_CAPTION,
                    url="https://media.example.com/edited-receipt.jpg",
                ),
            },
        },
    )


def revoke(phone: str) -> dict[str, Any]:
    """The customer deleted a message they sent ("delete for everyone")."""
    return message(phone, "revoke", revoke={"original_message_id": new_wamid()})


# -- the table ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdateCase:
    name: str
    build: Builder
    type: str  # messages.type as stored
    text: str | None  # messages.text as stored
    reply: ReplyKind  # what the customer gets back


UPDATE_CASES: tuple[UpdateCase, ...] = (
    UpdateCase("text", text, "text", TEXT, "llm"),
    UpdateCase("text_reply", text_reply, "text", REPLY_TEXT, "llm"),
    UpdateCase("forwarded_text", forwarded_text, "text", FORWARDED_TEXT, "llm"),
    UpdateCase("text_with_referral", text_with_referral, "text", REFERRAL_TEXT, "llm"),
    UpdateCase("image", image, "image", None, "canned"),
    UpdateCase("image_with_caption", image_with_caption, "image", IMAGE_CAPTION, "llm"),
    UpdateCase("video", video, "video", None, "canned"),
    UpdateCase("document", document, "document", DOCUMENT_CAPTION, "llm"),
    UpdateCase("audio", audio, "audio", None, "canned"),
    UpdateCase("voice", voice, "audio", None, "canned"),
    UpdateCase("static_sticker", static_sticker, "sticker", None, "canned"),
    UpdateCase("animated_sticker", animated_sticker, "sticker", None, "canned"),
    UpdateCase("reaction", reaction, "reaction", REACTION_EMOJI, "none"),
    UpdateCase("unreaction", unreaction, "reaction", None, "none"),
    UpdateCase(
        "current_location", current_location, "location", f"{CURRENT_LAT},{CURRENT_LON}", "canned"
    ),
    UpdateCase(
        "named_location", named_location, "location", f"{NAMED_PLACE}, {NAMED_ADDRESS}", "canned"
    ),
    UpdateCase("contacts", contacts, "contacts", ", ".join(CONTACT_NAMES), "canned"),
    UpdateCase("button_reply", button_reply, "interactive", BUTTON_TITLE, "llm"),
    UpdateCase("list_reply", list_reply, "interactive", LIST_TITLE, "llm"),
    UpdateCase("quick_reply", quick_reply, "button", QUICK_REPLY_TEXT, "llm"),
    UpdateCase(
        "quick_reply_without_context",
        quick_reply_without_context,
        "button",
        QUICK_REPLY_TEXT,
        "llm",
    ),
    UpdateCase("order", order, "order", ORDER_NOTE, "canned"),
    UpdateCase("unsupported", unsupported, "unsupported", None, "canned"),
    UpdateCase("interactive_with_errors", interactive_with_errors, "interactive", None, "canned"),
    UpdateCase("user_changed_number", user_changed_number, "system", OLD_NUMBER_BODY, "none"),
    UpdateCase(
        "customer_identity_changed", customer_identity_changed, "system", IDENTITY_BODY, "none"
    ),
    UpdateCase("edit_of_image", edit_of_image, "edit", EDITED_CAPTION, "none"),
    UpdateCase("revoke", revoke, "revoke", None, "none"),
    UpdateCase("unknown_future_type", unknown_future_type, "poll_vote", None, "canned"),
)


# -- statuses of our outbound messages ----------------------------------------------------


def _status(wamid: str, phone: str, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": phone,
        **fields,
    }


def _conversation(*, expires: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {
        "id": f"conv-test-{random.getrandbits(48):012x}",
        "origin": {"type": "service"},
    }
    if expires:
        block["expiration_timestamp"] = str(int(time.time()) + 24 * 3600)
    return block


_PRICING = {"billable": False, "pricing_model": "PMP", "category": "service"}


def status_sent(wamid: str, phone: str) -> dict[str, Any]:
    return _status(wamid, phone, "sent", conversation=_conversation(expires=True), pricing=_PRICING)


def status_delivered(wamid: str, phone: str) -> dict[str, Any]:
    return _status(wamid, phone, "delivered", conversation=_conversation(), pricing=_PRICING)


def status_read(wamid: str, phone: str) -> dict[str, Any]:
    return _status(wamid, phone, "read")


def status_played(wamid: str, phone: str) -> dict[str, Any]:
    """A voice message we sent was played."""
    return _status(wamid, phone, "played")


FAILED_CODE = 131026
FAILED_TITLE = "Message undeliverable"


def status_failed(wamid: str, phone: str) -> dict[str, Any]:
    return _status(
        wamid,
        phone,
        "failed",
        errors=[
            {
                "code": FAILED_CODE,
                "title": FAILED_TITLE,
                "message": FAILED_TITLE,
                "error_data": {"details": "The recipient cannot receive this message."},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }
        ],
    )


def status_with_callback_data(wamid: str, phone: str) -> dict[str, Any]:
    return _status(
        wamid,
        phone,
        "sent",
        biz_opaque_callback_data="ticket=T-2024-0042",
        conversation=_conversation(expires=True),
        pricing=_PRICING,
    )


STATUS_BUILDERS: tuple[Callable[[str, str], dict[str, Any]], ...] = (
    status_sent,
    status_delivered,
    status_read,
    status_played,
    status_failed,
    status_with_callback_data,
)
