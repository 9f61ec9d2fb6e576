"""What crosses the Ray boundary between the gateway, the shards, the LLM pool and delivery.

Small frozen dataclasses: they pickle quickly and are sent in batches (DESIGN.md §2).
`Content` is what a reply says; it travels as itself from the turn planner to the
provider, and is turned into JSON only where it is stored and where it goes on the wire.

Content limits from the Cloud API reference (messages, interactive object): at most 3
reply buttons with titles of at most 20 characters; a list has a button label of at most
20 characters, at most 10 rows in all, row titles of at most 24 characters and
descriptions of at most 72; a text body of at most 4096 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from store.records import Turn

MAX_TEXT = 4096
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_LIST_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_DESCRIPTION = 72
MAX_INTERACTIVE_BODY = 1024


class InvalidContent(ValueError):
    """A reply that WhatsApp would refuse; caught before it is stored."""


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Content:
    kind: Literal["text", "buttons", "list", "template"]
    text: str
    choices: tuple[Choice, ...] = ()
    list_button: str = "Options"
    template_name: str | None = None
    template_language: str = "en"
    template_params: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def plain(cls, text: str) -> Content:
        return cls("text", text)

    def validate(self) -> Content:
        if self.kind in ("buttons", "list") and len(self.text) > MAX_INTERACTIVE_BODY:
            raise InvalidContent(f"interactive body over {MAX_INTERACTIVE_BODY} characters")
        if self.kind == "buttons":
            if not 1 <= len(self.choices) <= MAX_BUTTONS:
                raise InvalidContent(f"reply buttons take 1 to {MAX_BUTTONS} choices")
            for c in self.choices:
                if not c.title or len(c.title) > MAX_BUTTON_TITLE:
                    raise InvalidContent(f"button title {c.title!r}: 1 to {MAX_BUTTON_TITLE} chars")
        if self.kind == "list":
            if not 1 <= len(self.choices) <= MAX_LIST_ROWS:
                raise InvalidContent(f"a list takes 1 to {MAX_LIST_ROWS} rows")
            if not self.list_button or len(self.list_button) > MAX_BUTTON_TITLE:
                raise InvalidContent(f"list button label: 1 to {MAX_BUTTON_TITLE} characters")
            for c in self.choices:
                if not c.title or len(c.title) > MAX_ROW_TITLE:
                    raise InvalidContent(f"row title {c.title!r}: 1 to {MAX_ROW_TITLE} chars")
                if c.description and len(c.description) > MAX_ROW_DESCRIPTION:
                    raise InvalidContent(f"row description over {MAX_ROW_DESCRIPTION} chars")
        if self.kind == "template" and not self.template_name:
            raise InvalidContent("a template needs a name")
        if len({c.id for c in self.choices}) != len(self.choices):
            raise InvalidContent("choice ids must be unique")
        return self

    def to_payload(self) -> dict[str, Any]:
        """A JSON form for the outbound row; `from_payload` reads it back."""
        return {
            "kind": self.kind,
            "text": self.text,
            "choices": [
                {"id": c.id, "title": c.title, "description": c.description} for c in self.choices
            ],
            "list_button": self.list_button,
            "template": {
                "name": self.template_name,
                "language": self.template_language,
                "params": list(self.template_params),
            },
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any] | None, text: str) -> Content:
        if not payload or payload.get("kind") in (None, "text"):
            return cls.plain(text)
        template = payload.get("template") or {}
        return cls(
            kind=payload["kind"],
            text=payload.get("text") or text,
            choices=tuple(
                Choice(c["id"], c["title"], c.get("description"))
                for c in payload.get("choices", [])
            ),
            list_button=payload.get("list_button") or "Options",
            template_name=template.get("name"),
            template_language=template.get("language") or "en",
            template_params=tuple(template.get("params") or ()),
        )


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a long text on sentence boundaries into parts WhatsApp accepts, in order."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > limit:  # one sentence longer than a message: cut at a space
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            if current:
                parts.append(current)
                current = ""
            parts.append(sentence[:cut].rstrip())
            sentence = sentence[cut:].lstrip()
        candidate = f"{current} {sentence}" if current else sentence
        if len(candidate) <= limit:
            current = candidate
        else:
            parts.append(current)
            current = sentence
    if current:
        parts.append(current)
    return parts


@dataclass(frozen=True, slots=True)
class LLMRequest:
    request_id: int  # the inbound message id: unique, and it ties the answer to the message
    history: tuple[Turn, ...]
    text: str
    trace: str | None = None  # the request id to log under


@dataclass(frozen=True, slots=True)
class LLMResult:
    request_id: int
    text: str
    ok: bool
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    attempts: int = 1
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    request_id: int  # the outbound row id; its parts are echoed as biz_opaque_callback_data
    business_number: str
    to: str
    content: Content
    trace: str | None = None  # the request id to log under
    reply_context: str | None = None  # the inbound message id this reply should quote


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    request_id: int
    ok: bool
    provider_message_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    # A limit or an outage, not the message: the reply is still pending and worth retrying.
    retryable: bool = False
