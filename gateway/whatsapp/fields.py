"""The webhook fields other than `messages`: what each becomes.

Meta sends many fields on the same subscription
(https://developers.facebook.com/docs/graph-api/webhooks/reference/whatsapp-business-account/).
Every one is answered 200 and logged under its name. Three kinds are read further:
- the ones an operator acts on (template status and quality, account and number quality,
  a customer who stopped marketing messages) become AccountEvents for the dashboard;
- `history` and `smb_message_echoes` (Coexistence: the WhatsApp Business app on the same
  number) carry messages that already happened; they become PastMessages, never answered;
- everything else (flows, security, group_*, future fields) is only logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from config.vocabulary import ProviderName
from gateway.whatsapp.models import Message, Metadata
from gateway.whatsapp.text import message_text, timestamp_of
from store.records import AccountEvent, PastMessage, UnparsedItem

SOURCE = ProviderName.WHATSAPP_CLOUD

# field -> (the value's key naming what it is about, the keys naming what happened)
_OPERATOR_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "message_template_status_update": (("message_template_name",), ("event",)),
    "message_template_quality_update": (("message_template_name",), ("new_quality_score",)),
    "template_category_update": (("message_template_name",), ("new_category", "category")),
    "account_update": (("phone_number", "waba_info"), ("event",)),
    "account_alerts": (("entity_id", "entity_type"), ("alert_info",)),
    "phone_number_quality_update": (("display_phone_number",), ("event", "current_limit")),
}
OPERATOR_FIELDS = frozenset({*_OPERATOR_FIELDS, "user_preferences"})
PAST_FIELDS = frozenset({"history", "smb_message_echoes"})


@dataclass(slots=True)
class FieldResult:
    events: list[AccountEvent] = field(default_factory=list)
    past: list[PastMessage] = field(default_factory=list)
    unparsed: list[UnparsedItem] = field(default_factory=list)


def read_field(name: str, account_id: str | None, value: dict[str, Any]) -> FieldResult:
    """What a non-`messages` change holds that is worth keeping beyond the log."""
    result = FieldResult()
    if name in _OPERATOR_FIELDS:
        subject_keys, event_keys = _OPERATOR_FIELDS[name]
        result.events.append(
            _event(name, account_id, value, _first(value, subject_keys), _first(value, event_keys))
        )
    elif name == "user_preferences":
        for pref in _dicts(value.get("user_preferences")):
            subject = pref.get("wa_id") or pref.get("user_id")
            event = "/".join(str(pref[k]) for k in ("category", "value") if pref.get(k))
            result.events.append(_event(name, account_id, pref, _text(subject), event or None))
    elif name in PAST_FIELDS:
        _read_past(name, value, result)
    return result


def _read_past(name: str, value: dict[str, Any], result: FieldResult) -> None:
    try:
        metadata = Metadata.model_validate(value.get("metadata"))
    except ValidationError as exc:
        result.unparsed.append(_unparsed(name, exc, value))
        return
    business = metadata.phone_number_id
    own = metadata.display_phone_number
    for raw in _past_messages(name, value):
        try:
            message = Message.model_validate(raw)
        except ValidationError as exc:
            result.unparsed.append(_unparsed(f"{name}.message", exc, raw))
            continue
        outbound = name == "smb_message_echoes" or (own is not None and message.from_ == own)
        # An echo names the customer in `to`; a history message from the business too.
        customer = _text(raw.get("to") or raw.get("to_user_id")) if outbound else message.sender
        customer = customer or _text(raw.get("_thread"))
        if not customer:
            result.unparsed.append(
                UnparsedItem(SOURCE, f"{name}.message", "no customer identity", _json(raw))
            )
            continue
        payload = {k: v for k, v in raw.items() if k != "_thread"}
        result.past.append(
            PastMessage(
                provider=SOURCE,
                provider_message_id=message.id,
                business_number=business,
                customer_phone=customer,
                direction="outbound" if outbound else "inbound",
                type=message.type,
                text=message_text(message),
                payload=payload,
                timestamp=timestamp_of(message.timestamp),
            )
        )


def _past_messages(name: str, value: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if name == "smb_message_echoes":
        yield from _dicts(value.get("message_echoes"))
        return
    # history: [{metadata: {phase, chunk_order, progress}, threads: [{id, messages}]}]
    for chunk in _dicts(value.get("history")):
        for thread in _dicts(chunk.get("threads")):
            for message in _dicts(thread.get("messages")):
                # The thread's id is the customer's, for messages that do not say it.
                yield {**message, "_thread": thread.get("id")}


def _event(
    name: str, account_id: str | None, value: dict[str, Any], subject: Any, event: Any
) -> AccountEvent:
    if isinstance(event, dict):  # account_alerts: {alert_type, alert_severity, ...}
        event = event.get("alert_type") or event.get("alert_severity")
    digest = hashlib.sha256(_json([name, account_id, value]).encode()).hexdigest()
    return AccountEvent(name, account_id, _text(subject), _text(event), value, digest)


def _first(value: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if value.get(key) not in (None, ""):
            return value[key]
    return None


def _text(value: Any, limit: int = 200) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)[:limit] or None


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, dict))


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _unparsed(where: str, exc: ValidationError, raw: Any) -> UnparsedItem:
    return UnparsedItem(SOURCE, where, first_error(exc), _json(raw))


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"[:500]
