"""What kind of reply an inbound message gets, by its WhatsApp type.

Reactions, revokes, edits and system notices are recorded but not answered; a
customer does not expect a bot to answer an emoji. Types we cannot read get a
polite reply that says what we understand, never silence (DESIGN.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from config.vocabulary import MEDIA_TYPES, MessageType
from store.records import InboxItem

UNDERSTOOD = "text messages, button and list choices, and captions on photos or documents"

# Not something the customer said to us but a change to the conversation: they update what
# they refer to and never reach flows, the after-hours notice, the abuse limit or the LLM
# (issue 11 §2). "ephemeral" is no MessageType; it stays silent as it always did.
NOT_CONVERSATIONAL = frozenset(
    {MessageType.REACTION, MessageType.REVOKE, MessageType.EDIT, MessageType.SYSTEM, "ephemeral"}
)
_SILENT = NOT_CONVERSATIONAL
# Messages whose text is the customer's words: the LLM's input, a flow's keyword or answer.
TEXTUAL = frozenset({MessageType.TEXT, MessageType.INTERACTIVE, MessageType.BUTTON})


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Literal["llm", "canned", "none"]
    text: str = ""


def decide(item: InboxItem) -> Decision:
    text = (item.text or "").strip()
    if item.type in _SILENT:
        return Decision("none")
    if item.type in TEXTUAL and text:
        return Decision("llm", text)
    if item.type in MEDIA_TYPES:
        if text:
            return Decision("llm", text)
        return Decision(
            "canned", f"Thanks, we received your {item.type}. How can we help you with it?"
        )
    if item.type == MessageType.LOCATION:
        return Decision("canned", "Thanks for sharing your location. How can we help?")
    if item.type == MessageType.CONTACTS:
        return Decision("canned", "Thanks, we received the contact details you shared.")
    if item.type == MessageType.ORDER:
        return Decision(
            "canned", "Thank you for your order! We have received it and will confirm shortly."
        )
    return Decision(
        "canned", f"Sorry, I can't read this kind of message yet. I understand {UNDERSTOOD}."
    )
