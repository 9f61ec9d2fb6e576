"""Our own webhook bodies for the fields besides `messages`, and for the shapes of the
`messages` field that Meta documents but the happy path never shows (usernames, missing
profiles, integer numbers, several changes). Written after Meta's webhook reference and
its business-scoped user id page; values are made up."""

from __future__ import annotations

import random
import time
from typing import Any

from tests.support import BUSINESS_NUMBER, DISPLAY_NUMBER, message, new_wamid, text_message

WABA_ID = "880000000000"


def new_bsuid() -> str:
    """A business-scoped user id: a country code, a dot, and Meta's digits."""
    return "US." + "".join(random.choices("0123456789", k=20))


def body(*changes: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [{"field": field, "value": value} for field, value in changes],
            }
        ],
    }


def metadata() -> dict[str, Any]:
    return {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": BUSINESS_NUMBER}


def messages_value(**parts: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "metadata": metadata(), **parts}


def now() -> int:
    return int(time.time())


# -- the `messages` field: identities -----------------------------------------------------


def username_message(bsuid: str, text: str, *, from_value: str | None) -> dict[str, Any]:
    """A customer with a WhatsApp username: no phone, or an empty one, and a user id."""
    sent = text_message("", text)
    if from_value is None:
        del sent["from"]
    else:
        sent["from"] = from_value
    sent["user_id"] = bsuid
    return sent


def username_contact(bsuid: str, name: str) -> dict[str, Any]:
    return {"profile": {"name": name, "username": "@" + name.lower()}, "user_id": bsuid}


# -- other fields -------------------------------------------------------------------------


def template_status(name: str, event: str = "REJECTED") -> tuple[str, dict[str, Any]]:
    return (
        "message_template_status_update",
        {
            "event": event,
            "message_template_id": random.randrange(10**15, 10**16),
            "message_template_name": name,
            "message_template_language": "en_US",
            "reason": "INCORRECT_CATEGORY",
        },
    )


def template_quality(name: str) -> tuple[str, dict[str, Any]]:
    return (
        "message_template_quality_update",
        {
            "previous_quality_score": "GREEN",
            "new_quality_score": "YELLOW",
            "message_template_id": random.randrange(10**15, 10**16),
            "message_template_name": name,
            "message_template_language": "de",
        },
    )


def number_quality() -> tuple[str, dict[str, Any]]:
    return (
        "phone_number_quality_update",
        {
            "display_phone_number": DISPLAY_NUMBER,
            "event": "FLAGGED",
            "current_limit": "TIER_1K",
            "nonce": new_wamid(),  # keeps each test's body distinct
        },
    )


def account_update() -> tuple[str, dict[str, Any]]:
    return (
        "account_update",
        {
            "phone_number": DISPLAY_NUMBER,
            "event": "ACCOUNT_VIOLATION",
            "violation_info": {"violation_type": "SCAM"},
            "nonce": new_wamid(),
        },
    )


def marketing_stop(phone: str) -> tuple[str, dict[str, Any]]:
    return (
        "user_preferences",
        {
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": phone}],
            "user_preferences": [
                {
                    "wa_id": phone,
                    "detail": "User requested to stop marketing messages",
                    "category": "marketing_messages",
                    "value": "stop",
                    "timestamp": now(),
                }
            ],
        },
    )


def only_logged(field: str) -> tuple[str, dict[str, Any]]:
    """A field we only log: its value's shape does not matter to us."""
    return (field, {"nonce": new_wamid(), "event": "SOMETHING", "details": {"n": 1}})


LOGGED_ONLY_FIELDS = (
    "account_alerts",
    "account_review_update",
    "phone_number_name_update",
    "business_capability_update",
    "security",
    "flows",
    "calls",
    "smb_app_state_sync",
    "partner_solutions",
    "payment_configuration_update",
    "group_lifecycle_update",
    "group_participants_update",
    "a_field_meta_adds_next_year",
)


def history(phone: str, *, customer_text: str, business_text: str) -> tuple[str, dict[str, Any]]:
    """Coexistence history sync: past messages of a thread, both directions."""
    earlier = now() - 30 * 24 * 3600
    mine = message(DISPLAY_NUMBER, "text", text={"body": business_text})
    mine["timestamp"] = str(earlier + 60)
    mine["history_context"] = {"status": "READ"}
    theirs = message(phone, "text", text={"body": customer_text})
    theirs["timestamp"] = str(earlier)
    theirs["history_context"] = {"status": "DELIVERED"}
    return (
        "history",
        {
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "history": [
                {
                    "metadata": {"phase": 0, "chunk_order": 0, "progress": 100},
                    "threads": [{"id": phone, "messages": [theirs, mine]}],
                }
            ],
        },
    )


def echo(phone: str, text: str) -> tuple[str, dict[str, Any]]:
    """The business wrote from the WhatsApp Business app on the same number."""
    sent = message(DISPLAY_NUMBER, "text", text={"body": text})
    sent["to"] = phone
    return (
        "smb_message_echoes",
        {"messaging_product": "whatsapp", "metadata": metadata(), "message_echoes": [sent]},
    )
