"""The shapes of the settings operators edit from the dashboard (table `app_settings`).

One pydantic model per key validates what the API accepts, and `parse_stored` reads
what is stored, so the writer (the REST API) and the readers (the actors, which reload
when `store.app_settings.version` changes) share one definition of each key.

`flows` (with the business hours inside it) is shaped by the flows engine's own file
schema, actors/flows/schema.py, and validated with it by the API.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ModelId = str
_MODEL_ID = re.compile(r"^[\w.\-:/]{1,100}$")


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SystemPrompt(_Shape):
    """Stored as the bare string."""

    value: str = Field(min_length=1, max_length=20_000)


class Models(_Shape):
    """OpenRouter model ids: the primary, then the fallbacks in order."""

    primary: str = Field(min_length=1, max_length=100)
    fallbacks: list[str] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _check(self) -> Models:
        chain = [self.primary, *self.fallbacks]
        bad = [m for m in chain if not _MODEL_ID.match(m)]
        if bad:
            raise ValueError(f"not a model id (provider/name): {bad[0]!r}")
        if len(set(chain)) != len(chain):
            raise ValueError("a model appears twice in the chain")
        return self


class FaqEntry(_Shape):
    question: str = Field(min_length=1, max_length=500)
    answer: str = Field(min_length=1, max_length=4000)


class Business(_Shape):
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)


class Faq(_Shape):
    """The shape of config/faq.yaml (and of actors.llm.faq.Faq.from_mapping)."""

    business: Business = Field(default_factory=Business)
    fallback: str = Field(
        default="A member of our team will get back to you soon.", min_length=1, max_length=1000
    )
    entries: list[FaqEntry] = Field(default_factory=list, max_length=500)


class WindowTemplate(_Shape):
    """The approved template sent when the 24-hour window is closed (Meta error 131047)."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(
        default="en", pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description="e.g. en or en_US"
    )
    body_parameters: list[str] = Field(default_factory=list, max_length=10)


SHAPES: dict[str, type[_Shape]] = {
    "system_prompt": SystemPrompt,
    "models": Models,
    "faq": Faq,
    "window_template": WindowTemplate,
}


def to_stored(key: str, value: _Shape) -> Any:
    if isinstance(value, SystemPrompt):
        return value.value
    return value.model_dump(mode="json")


def parse_stored(key: str, stored: Any) -> _Shape | None:
    """A stored value as its model; None for an unknown key or a value that no longer fits."""
    shape = SHAPES.get(key)
    if shape is None:
        return None
    try:
        if shape is SystemPrompt:
            return SystemPrompt(value=stored)
        return shape.model_validate(stored)
    except ValidationError:
        return None
