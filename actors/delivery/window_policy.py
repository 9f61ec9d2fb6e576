"""WhatsApp's 24-hour customer-service window.

A business may send free-form messages only within 24 hours of the customer's last
message; outside it only an approved template may be sent, and a free-form send fails
with error 131047 ("Re-engagement message"). See
https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates
The window itself is defined once, in config.vocabulary (store's SQL uses it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from actors.wire import Content
from config.vocabulary import window_open

__all__ = ["WindowTemplate", "as_template", "choose", "window_open"]


@dataclass(frozen=True, slots=True)
class WindowTemplate:
    """The approved template sent when the window is closed."""

    name: str
    language: str = "en"


def choose(
    content: Content,
    last_customer_message_at: datetime | None,
    now: datetime,
    template: WindowTemplate | None,
) -> Content | None:
    """What may be sent now: the content itself, the template, or None (nothing allowed)."""
    if content.kind == "template" or window_open(last_customer_message_at, now):
        return content
    return as_template(template)


def as_template(template: WindowTemplate | None) -> Content | None:
    if template is None:
        return None
    return Content(
        "template",
        f"[template {template.name}]",
        template_name=template.name,
        template_language=template.language,
    )
