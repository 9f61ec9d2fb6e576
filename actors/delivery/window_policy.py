"""WhatsApp's 24-hour customer-service window.

A business may send free-form messages only within 24 hours of the customer's last
message; outside it only an approved template may be sent, and a free-form send fails
with error 131047 ("Re-engagement message"). See
https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates
The window itself is defined once, in config.vocabulary (store's SQL uses it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from actors.wire import Content
from config.vocabulary import window_open

__all__ = ["WindowTemplate", "as_template", "choose", "refusal", "window_open"]


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


def refusal(last_customer_message_at: datetime | None, now: datetime, *, sandbox: bool) -> str:
    """Why nothing was sent, in words an operator (or a newcomer trying the sandbox) acts on."""
    if last_customer_message_at is None:
        when = "the customer has not written yet"
    else:
        when = f"the customer's last message is {_age(now - last_customer_message_at)} old"
    text = (
        f"not sent: {when}, and WhatsApp allows free text only within 24 hours of it; "
        "no template is set for a closed window (WINDOW_TEMPLATE_NAME, or the 24-hour "
        "template in the dashboard's settings)"
    )
    if sandbox:
        # README's test webhook carries a timestamp; an old one lands here.
        text += "; in the sandbox, post the test webhook with a current timestamp ($(date +%s))"
    return text


def _age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.0f} hours" if hours < 72 else f"{hours / 24:.0f} days"
