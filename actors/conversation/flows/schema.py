"""The flows file, as typed models. Every field is checked when the file is loaded.

business_hours: {timezone: Europe/Berlin, weekly: {mon: ["09:00-18:00"], ...},
                 closed_reply: "..."}
flows:
  - name: order_status
    trigger: {keyword: ["order status"], button: order_status}
    actions:
      - ask: {field: order_number, prompt: "Your order number?", pattern: "^[0-9]{4,10}$",
              retry: "That does not look like an order number."}
      - reply: "Thanks! We are checking order {order_number}."
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actors.wire import MAX_BUTTON_TITLE, MAX_BUTTONS, MAX_LIST_ROWS, MAX_ROW_TITLE

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusinessHours(_Strict):
    timezone: str = "UTC"
    weekly: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[str]] = Field(
        default_factory=dict
    )
    closed_reply: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("weekly")
    @classmethod
    def _spans(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, spans in value.items():
            for span in spans:
                if not _SPAN.match(span):
                    raise ValueError(f"{day}: {span!r} is not HH:MM-HH:MM")
        return value


class Trigger(_Strict):
    keyword: list[str] = Field(default_factory=list)
    regex: str | None = None
    button: list[str] = Field(default_factory=list)  # button or list reply ids
    first_message: bool = False
    outside_hours: bool = False

    @field_validator("keyword", "button", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Trigger:
        if not (
            self.keyword or self.regex or self.button or self.first_message or self.outside_hours
        ):
            raise ValueError(
                "a trigger needs keyword, regex, button, first_message or outside_hours"
            )
        return self


class ButtonSpec(_Strict):
    id: str
    title: Annotated[str, Field(min_length=1, max_length=MAX_BUTTON_TITLE)]


class RowSpec(_Strict):
    id: str
    title: Annotated[str, Field(min_length=1, max_length=MAX_ROW_TITLE)]
    description: str | None = None


class Buttons(_Strict):
    text: str
    buttons: Annotated[list[ButtonSpec], Field(min_length=1, max_length=MAX_BUTTONS)]


class ListReply(_Strict):
    text: str
    button: Annotated[str, Field(min_length=1, max_length=MAX_BUTTON_TITLE)] = "Options"
    rows: Annotated[list[RowSpec], Field(min_length=1, max_length=MAX_LIST_ROWS)]


class Ask(_Strict):
    field: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")]
    prompt: str
    pattern: str | None = None
    retry: str = "Sorry, I didn't get that. Please try again."

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value


class Action(_Strict):
    """Exactly one of the fields is set."""

    reply: str | None = None
    reply_buttons: Buttons | None = None
    reply_list: ListReply | None = None
    ask: Ask | None = None
    set: dict[str, str] | None = None
    handoff: str | None = None
    llm: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        chosen = [name for name, value in self if value is not None]
        if len(chosen) != 1:
            raise ValueError(
                "an action is one of reply, reply_buttons, reply_list, ask, set, handoff, llm"
                f" (got {', '.join(chosen) or 'none'})"
            )
        return self


class Flow(_Strict):
    name: str
    trigger: Trigger
    actions: Annotated[list[Action], Field(min_length=1)]


class FlowsFile(_Strict):
    business_hours: BusinessHours | None = None
    flows: list[Flow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> FlowsFile:
        names = [f.name for f in self.flows]
        if len(set(names)) != len(names):
            raise ValueError("flow names must be unique")
        return self
